package org.tflbnn.demo;

import org.tflbnn.demo.core.ClassificationResult;
import org.tflbnn.demo.core.Classifier;
import org.tflbnn.demo.core.InferenceEngine;
import org.tflbnn.demo.core.InvalidModelException;

import java.io.Closeable;
import java.io.IOException;

/**
 * The current model and its engine. Used only from the {@link BackgroundWorker} thread, which
 * is what makes it safe without locks.
 *
 * <p>The engine is built when a model arrives and rebuilt when the thread count changes, since
 * the interpreter fixes its thread count at construction.
 */
final class ClassifierSession implements Closeable {

    /** Predictions shown on screen. */
    static final int TOP_K = 5;

    private final String engineClass;
    private LoadedModel model;
    private InferenceEngine engine;
    private int engineThreads;

    /** A session whose engines are the TFLite/LCE runtime's. */
    ClassifierSession() {
        this(RuntimeLoader.ENGINE_CLASS);
    }

    /**
     * @param engineClass the InferenceEngine implementation to build (see RuntimeLoader); the
     *     app uses RuntimeLoader.ENGINE_CLASS, the JVM tests a double of it
     */
    ClassifierSession(String engineClass) {
        this.engineClass = engineClass;
    }

    /**
     * Makes a model current and builds its engine. The model stays current even when no
     * engine can be built, so its facts can be shown.
     *
     * @param loaded the new model
     * @param threads interpreter threads
     * @throws RuntimeUnavailableException if this APK or device has no usable runtime
     * @throws ModelLoadException if the interpreter rejects the model
     */
    void setModel(LoadedModel loaded, int threads)
            throws RuntimeUnavailableException, ModelLoadException {
        closeEngine();
        model = loaded;
        ensureEngine(threads);
    }

    /**
     * Classifies an image with the current model.
     *
     * @param image decoded pixels
     * @param threads interpreter threads (the engine is rebuilt when this changes)
     * @param runs timed runs (at least 1)
     * @return top predictions and latency
     * @throws IllegalStateException if no model was set
     * @throws RuntimeUnavailableException if this APK or device has no usable runtime
     * @throws Exception from the interpreter or the core (e.g. a model that fails at run time)
     */
    ClassificationResult classify(PixelImage image, int threads, int runs) throws Exception {
        if (model == null) {
            throw new IllegalStateException("no model is loaded");
        }
        ensureEngine(threads);
        Classifier classifier = newClassifier();
        return classifier.classify(image.argb(), image.width(), image.height(), runs, TOP_K);
    }

    /** Releases the engine (the interpreter's native memory). */
    @Override
    public void close() {
        closeEngine();
    }

    private Classifier newClassifier() throws ModelLoadException {
        try {
            return new Classifier(engine, model.tflite(), model.metadata());
        } catch (InvalidModelException mismatch) {
            // ModelReader already checked this pair; kept as a message rather than a crash.
            throw new ModelLoadException(model.metadataFileName() + " does not match "
                    + model.fileName() + ": " + mismatch.getMessage(), mismatch);
        }
    }

    private void ensureEngine(int threads) throws RuntimeUnavailableException, ModelLoadException {
        if (engine != null && engineThreads == threads) {
            return;
        }
        closeEngine();
        engine = RuntimeLoader.create(engineClass, model.bytes(), threads);
        engineThreads = threads;
    }

    private void closeEngine() {
        if (engine == null) {
            return;
        }
        try {
            engine.close();
        } catch (IOException ignored) {
            // Closing only frees native memory; there is nothing the user could do about it.
        } finally {
            engine = null;
        }
    }
}
