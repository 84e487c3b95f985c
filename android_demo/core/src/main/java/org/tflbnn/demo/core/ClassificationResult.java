package org.tflbnn.demo.core;

import java.util.Collections;
import java.util.List;

/** What one {@link Classifier#classify} call found: ranked classes, timings and the tensors. */
public final class ClassificationResult {
    private final List<Prediction> top;
    private final LatencyStats latency;
    private final float[] outputs;
    private final float[] input;

    /**
     * @param top the ranked classes, most probable first (copied)
     * @param latency timings of the inference runs
     * @param outputs the model's raw outputs of the last run (copied)
     * @param input the preprocessed input tensor (copied)
     */
    public ClassificationResult(List<Prediction> top, LatencyStats latency, float[] outputs,
                                float[] input) {
        this.top = Collections.unmodifiableList(new java.util.ArrayList<Prediction>(top));
        this.latency = latency;
        this.outputs = outputs.clone();
        this.input = input.clone();
    }

    /** @return the ranked classes, most probable first (unmodifiable) */
    public List<Prediction> top() {
        return top;
    }

    /** @return timings of the inference runs (preprocessing not included) */
    public LatencyStats latency() {
        return latency;
    }

    /** @return a copy of the model's raw outputs (logits, or probabilities) of the last run */
    public float[] outputs() {
        return outputs.clone();
    }

    /** @return a copy of the preprocessed input tensor, HWC */
    public float[] input() {
        return input.clone();
    }
}
