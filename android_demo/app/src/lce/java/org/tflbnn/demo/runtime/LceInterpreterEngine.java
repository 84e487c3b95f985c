package org.tflbnn.demo.runtime;

import org.tensorflow.lite.Interpreter;
import org.tflbnn.demo.core.InferenceEngine;

import java.nio.ByteBuffer;

/**
 * Runs a model with TensorFlow Lite and the Larq Compute Engine kernels (LceQuantize,
 * LceBconv2d, ...), which the LCE AAR's native library registers with the stock Interpreter.
 *
 * <p>The only class of the app that uses TensorFlow Lite; it is compiled by the Gradle build
 * only (the AAR is not available offline) and found by name by org.tflbnn.demo.RuntimeLoader.
 * Not thread-safe, like the Interpreter: the app calls it from one thread.
 */
public final class LceInterpreterEngine implements InferenceEngine {

    private final Interpreter interpreter;

    /**
     * Builds the interpreter.
     *
     * @param model the whole .tflite file in a direct ByteBuffer of native byte order (the
     *     Interpreter rejects other buffers, except memory-mapped ones); it must stay
     *     unmodified while this engine lives, since the interpreter reads the weights from it
     * @param threads interpreter threads (at least 1)
     * @throws IllegalArgumentException if TensorFlow Lite rejects the model (e.g. an op it
     *     cannot resolve)
     */
    public LceInterpreterEngine(ByteBuffer model, int threads) {
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        // LCE issue #636 reports "Failed to load XNNPACK delegate" with LCE models, and the
        // LCE Android guide turns XNNPACK off; LCE's own kernels run the binary layers.
        options.setUseXNNPACK(false);
        interpreter = new Interpreter(model, options);
    }

    /**
     * Runs the model once.
     *
     * @param input the preprocessed image: direct, native byte order, height × width × channels
     *     float32 values; read from position 0
     * @param logits receives the model's float32 outputs; its length must be the output size
     * @throws IllegalArgumentException if the sizes do not match the model's tensors
     */
    @Override
    public void run(ByteBuffer input, float[] logits) {
        float[][] output = new float[1][logits.length];
        input.rewind();
        interpreter.run(input, output);
        System.arraycopy(output[0], 0, logits, 0, logits.length);
    }

    /** Frees the interpreter's native memory. */
    @Override
    public void close() {
        interpreter.close();
    }
}
