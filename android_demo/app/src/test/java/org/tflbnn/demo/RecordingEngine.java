package org.tflbnn.demo;

import org.tflbnn.demo.core.InferenceEngine;
import org.tflbnn.demo.core.InvalidModelException;
import org.tflbnn.demo.core.TfliteModel;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Test double of app/src/lce's engine, loaded by name through RuntimeLoader the way the real
 * one is in a Gradle-built APK (the JVM tests have no TFLite runtime). It has a name of its own
 * so that it never shadows the real class on Gradle's unit-test class path.
 *
 * <p>Like the TFLite Interpreter it rejects model buffers that are not direct in native byte
 * order, models it cannot read, and tensors of the wrong size, and fails after close. Its
 * "model" is a real computation over the input tensor: output k is the mean of the input
 * values whose index i has {@code i % outputs == k}. Every instance is recorded in
 * {@link #CREATED} for the tests to inspect; not thread-safe (the tests use one thread).
 */
public final class RecordingEngine implements InferenceEngine {

    /** Every engine built since {@link #reset}, oldest first. */
    public static final List<RecordingEngine> CREATED = new ArrayList<RecordingEngine>();

    private static Throwable nextConstructorFailure;
    private static IOException nextCloseFailure;

    /** The model buffer passed in (the interpreter keeps using it). */
    public final ByteBuffer model;
    /** Its position when the engine was built. */
    public final int modelPosition;
    /** Interpreter threads asked for. */
    public final int threads;
    private final int inputValues;
    private final int outputValues;
    private int runs;
    private boolean closed;

    /**
     * @param model the .tflite file, direct and in native byte order
     * @param threads interpreter threads, at least 1
     * @throws IllegalArgumentException as the Interpreter does, for a buffer it cannot take or
     *     bytes that are not a model
     */
    public RecordingEngine(ByteBuffer model, int threads) {
        Throwable failure = nextConstructorFailure;
        nextConstructorFailure = null;
        if (failure instanceof RuntimeException) {
            throw (RuntimeException) failure;
        }
        if (failure instanceof Error) {
            throw (Error) failure;
        }
        if (!model.isDirect() || model.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("Model ByteBuffer should be either a "
                    + "MappedByteBuffer of the model file, or a direct ByteBuffer using "
                    + "ByteOrder.nativeOrder() which contains bytes of model content.");
        }
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        TfliteModel facts;
        try {
            facts = TfliteModel.read(model);
        } catch (InvalidModelException invalid) {
            throw new IllegalArgumentException("Could not build model: " + invalid.getMessage());
        }
        this.model = model;
        this.modelPosition = model.position();
        this.threads = threads;
        this.inputValues = product(facts.inputShape());
        this.outputValues = product(facts.outputShape());
        CREATED.add(this);
    }

    /** Forgets the recorded engines and pending failures. */
    public static void reset() {
        CREATED.clear();
        nextConstructorFailure = null;
        nextCloseFailure = null;
    }

    /** @param failure thrown by the next constructor call (a RuntimeException or an Error) */
    public static void failNextConstruction(Throwable failure) {
        nextConstructorFailure = failure;
    }

    /** @param failure thrown by the next {@link #close} call (which still closes) */
    public static void failNextClose(IOException failure) {
        nextCloseFailure = failure;
    }

    @Override
    public void run(ByteBuffer input, float[] logits) {
        if (closed) {
            throw new IllegalStateException("Internal error: The Interpreter has already been "
                    + "closed.");
        }
        if (!input.isDirect() || input.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("input must be direct in native byte order");
        }
        if (input.capacity() != inputValues * 4 || logits.length != outputValues) {
            throw new IllegalArgumentException("expected " + inputValues + " input floats and "
                    + outputValues + " outputs, got " + input.capacity() + " bytes and "
                    + logits.length + " outputs");
        }
        runs++;
        double[] sums = new double[outputValues];
        int[] counts = new int[outputValues];
        for (int i = 0; i < inputValues; i++) {
            sums[i % outputValues] += input.getFloat(i * 4);
            counts[i % outputValues]++;
        }
        for (int k = 0; k < outputValues; k++) {
            logits[k] = (float) (sums[k] / counts[k]);
        }
    }

    @Override
    public void close() throws IOException {
        closed = true;
        IOException failure = nextCloseFailure;
        nextCloseFailure = null;
        if (failure != null) {
            throw failure;
        }
    }

    /** @return how often {@link #run} ran */
    public int runs() {
        return runs;
    }

    /** @return whether {@link #close} was called */
    public boolean isClosed() {
        return closed;
    }

    private static int product(int[] shape) {
        int product = 1;
        for (int dimension : shape) {
            product *= dimension;
        }
        return product;
    }
}
