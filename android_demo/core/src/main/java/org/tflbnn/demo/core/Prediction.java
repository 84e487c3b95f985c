package org.tflbnn.demo.core;

/** One ranked class of a classification. */
public final class Prediction {
    /** The output unit. */
    public final int index;
    /** Its class name. */
    public final String label;
    /** Its softmax probability (or the model's own, when the model outputs a distribution). */
    public final double probability;

    /**
     * @param index the output unit
     * @param label its class name
     * @param probability its probability
     */
    public Prediction(int index, String label, double probability) {
        this.index = index;
        this.label = label;
        this.probability = probability;
    }

    /** @return e.g. {@code "9 Ankle boot 0.9812"} */
    @Override
    public String toString() {
        return index + " " + label + " " + String.format(java.util.Locale.ROOT, "%.4f",
                probability);
    }
}
