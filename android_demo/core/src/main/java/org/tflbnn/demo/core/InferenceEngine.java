package org.tflbnn.demo.core;

import java.io.Closeable;
import java.nio.ByteBuffer;

/**
 * Runs a model; the app's implementation wraps the TFLite/LCE interpreter, tests use a plain
 * Java one. Closing releases the runtime's native resources.
 */
public interface InferenceEngine extends Closeable {
    /**
     * Runs the model once.
     *
     * @param input the input tensor: a direct buffer in native byte order holding the float32
     *     values in the model's order, position 0
     * @param logits receives the model's float32 outputs, one per class
     * @throws Exception if the runtime fails
     */
    void run(ByteBuffer input, float[] logits) throws Exception;
}
