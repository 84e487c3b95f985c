package org.tflbnn.demo.core;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

/**
 * An image classifier: a model, the metadata that says how to feed it and name its outputs, and
 * an engine that runs it. Applies the same checks, preprocessing, softmax and top-k order as
 * Python's {@code tflbnn classify}.
 */
public final class Classifier {
    private final InferenceEngine engine;
    private final ModelMetadata metadata;
    private final int classes;

    /**
     * @param engine runs the model (not closed by this class)
     * @param model the model's facts, read from the same file the engine runs
     * @param metadata the model's {@code model.json}
     * @throws InvalidModelException if the model and metadata do not belong together (see
     *     {@link #checkCompatible})
     */
    public Classifier(InferenceEngine engine, TfliteModel model, ModelMetadata metadata)
            throws InvalidModelException {
        if (engine == null) {
            throw new NullPointerException("engine");
        }
        checkCompatible(model, metadata);
        this.engine = engine;
        this.metadata = metadata;
        this.classes = metadata.labels().size();
    }

    /**
     * Checks that a model and its metadata belong together: exactly one input and one output,
     * a float32 input of shape {1, height, width, channels} as the preprocessing says, and a
     * float32 output holding one value per label.
     *
     * @param model the model's facts
     * @param metadata the model's {@code model.json}
     * @throws InvalidModelException if they disagree; the message gives both sides
     */
    public static void checkCompatible(TfliteModel model, ModelMetadata metadata)
            throws InvalidModelException {
        if (model.inputCount() != 1 || model.outputCount() != 1) {
            throw new InvalidModelException("expected a model with one input and one output, "
                    + "found " + model.inputCount() + " and " + model.outputCount());
        }
        if (!TensorTypes.FLOAT32.equals(model.inputType())) {
            throw new InvalidModelException("expected a float32 model input, found "
                    + model.inputType());
        }
        if (!TensorTypes.FLOAT32.equals(model.outputType())) {
            throw new InvalidModelException("expected a float32 model output, found "
                    + model.outputType());
        }
        int[] preprocessed = metadata.preprocessing().inputShape();
        int[] expected = {1, preprocessed[0], preprocessed[1], preprocessed[2]};
        if (!Arrays.equals(model.inputShape(), expected)) {
            throw new InvalidModelException("model.json preprocessing gives input "
                    + Arrays.toString(expected) + " but the model expects "
                    + Arrays.toString(model.inputShape()));
        }
        int[] outputShape = model.outputShape();
        int labels = metadata.labels().size();
        long values = 1;
        for (int dimension : outputShape) {
            values *= dimension;
        }
        int lastDimension = outputShape.length == 0 ? 1 : outputShape[outputShape.length - 1];
        if (lastDimension != labels || values != labels) {
            throw new InvalidModelException("model.json has " + labels + " labels but the model "
                    + "has " + lastDimension + " outputs (output shape "
                    + Arrays.toString(outputShape) + ")");
        }
    }

    /**
     * Classifies one image: preprocesses it once, runs the model {@code runs} times (timing each
     * run with {@link System#nanoTime}), then ranks the last run's outputs (softmax unless they
     * already are probabilities).
     *
     * @param argb the image, ARGB_8888, row-major, length width * height
     * @param width image width in pixels
     * @param height image height in pixels
     * @param runs how many times to run the model, at least 1 (more give steadier timings)
     * @param topK how many classes to return, at least 1 (clipped to the number of classes)
     * @return the ranked classes, timings, outputs and input tensor
     * @throws IllegalArgumentException if the image size, runs or topK is invalid
     * @throws Exception whatever the engine throws
     */
    public ClassificationResult classify(int[] argb, int width, int height, int runs, int topK)
            throws Exception {
        if (runs < 1) {
            throw new IllegalArgumentException("runs must be at least 1, got " + runs);
        }
        if (topK < 1) {
            throw new IllegalArgumentException("topK must be at least 1, got " + topK);
        }
        float[] input = ImagePreprocessor.preprocess(argb, width, height,
                metadata.preprocessing());
        ByteBuffer buffer = ImagePreprocessor.toInputBuffer(input);
        float[] outputs = new float[classes];
        long[] durations = new long[runs];
        for (int run = 0; run < runs; run++) {
            buffer.rewind(); // an engine may have moved the position while reading
            long start = System.nanoTime();
            engine.run(buffer, outputs);
            durations[run] = System.nanoTime() - start;
        }
        List<Prediction> top = Predictions.topK(Predictions.softmaxIfLogits(outputs),
                metadata.labels(), topK);
        return new ClassificationResult(top, LatencyStats.fromNanos(durations), outputs, input);
    }
}
