package org.tflbnn.demo.core;

import java.util.ArrayList;
import java.util.List;

/**
 * From raw model outputs to ranked classes, as Python's {@code tflbnn.classifier}
 * ({@code softmax_if_logits} and {@code top_k}) does it for {@code tflbnn classify}.
 */
public final class Predictions {
    /** Outputs that already are a distribution (a model ending in softmax) are kept as they are. */
    static final double PROBABILITY_TOLERANCE = 1e-3;

    private Predictions() {
    }

    /**
     * Softmax in double, unless the outputs already are a probability distribution (every value
     * non-negative and the sum within 1e-3 of 1), which is returned unchanged.
     *
     * @param outputs the model's outputs for one input, non-empty
     * @return probabilities, one per output
     * @throws IllegalArgumentException if outputs is empty
     */
    public static double[] softmaxIfLogits(float[] outputs) {
        if (outputs.length == 0) {
            throw new IllegalArgumentException("no outputs to rank");
        }
        double[] values = new double[outputs.length];
        boolean nonNegative = true;
        double sum = 0;
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < outputs.length; i++) {
            values[i] = outputs[i];
            nonNegative &= values[i] >= 0;
            sum += values[i];
            max = Math.max(max, values[i]);
        }
        if (nonNegative && Math.abs(sum - 1.0) <= PROBABILITY_TOLERANCE) {
            return values;
        }
        double total = 0;
        for (int i = 0; i < values.length; i++) {
            values[i] = Math.exp(values[i] - max);
            total += values[i];
        }
        for (int i = 0; i < values.length; i++) {
            values[i] /= total;
        }
        return values;
    }

    /**
     * The {@code k} most probable classes, highest first; equal probabilities keep index order
     * (numpy's {@code argsort(-p, kind="stable")}); NaN ranks last.
     *
     * @param probabilities one probability per class
     * @param labels class names, one per probability
     * @param k how many to return, at least 1; more than the number of classes returns all
     * @return {@code min(k, classes)} predictions
     * @throws IllegalArgumentException if k is less than 1 or the lengths differ
     */
    public static List<Prediction> topK(double[] probabilities, List<String> labels, int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k must be at least 1, got " + k);
        }
        if (labels.size() != probabilities.length) {
            throw new IllegalArgumentException(labels.size() + " labels for "
                    + probabilities.length + " probabilities");
        }
        int count = Math.min(k, probabilities.length);
        boolean[] taken = new boolean[probabilities.length];
        List<Prediction> top = new ArrayList<Prediction>(count);
        // Selection by repeated scans: k and the class count are small, and a strict "greater
        // than" keeps the lowest index among equals, which is the stable order.
        for (int rank = 0; rank < count; rank++) {
            int best = -1;
            for (int i = 0; i < probabilities.length; i++) {
                if (!taken[i] && (best < 0 || ranksBefore(probabilities[i], probabilities[best]))) {
                    best = i;
                }
            }
            taken[best] = true;
            top.add(new Prediction(best, labels.get(best), probabilities[best]));
        }
        return top;
    }

    /** Whether {@code a} ranks strictly before {@code b}: greater, and any number beats NaN. */
    private static boolean ranksBefore(double a, double b) {
        if (Double.isNaN(a)) {
            return false;
        }
        return Double.isNaN(b) || a > b;
    }
}
