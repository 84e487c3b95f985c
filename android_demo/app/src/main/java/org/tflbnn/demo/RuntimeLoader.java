package org.tflbnn.demo;

import org.tflbnn.demo.core.InferenceEngine;

import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.nio.ByteBuffer;

/**
 * Creates the inference engine backed by TensorFlow Lite with the LCE kernels.
 *
 * <p>The engine class lives in {@code src/lce/java} and needs the LCE AAR, which only the
 * Gradle build has. The offline CI build compiles everything else without it, so the class is
 * looked up by name here: a Gradle-built APK finds it, the offline APK reports that it has no
 * runtime instead of failing to start.
 */
final class RuntimeLoader {

    /** The one class that uses org.tensorflow.lite (app/src/lce/java). */
    static final String ENGINE_CLASS = "org.tflbnn.demo.runtime.LceInterpreterEngine";

    static final String NOT_BUILT_IN = "this APK was built without the TFLite/LCE runtime; "
            + "build it with Gradle (see android_demo/README.md)";

    private RuntimeLoader() {
    }

    /**
     * Builds an interpreter for a model.
     *
     * @param engineClass fully qualified name of an {@link InferenceEngine} with a public
     *     (ByteBuffer, int) constructor: {@link #ENGINE_CLASS} in the app, doubles in the tests
     * @param model the .tflite file in a direct ByteBuffer of native byte order, not modified
     *     afterwards (the interpreter keeps using it)
     * @param threads interpreter threads (at least 1)
     * @return a new engine; close it when done
     * @throws RuntimeUnavailableException if this APK has no runtime (the class is absent or
     *     unusable) or its native library cannot be loaded on this device
     * @throws ModelLoadException if the interpreter rejects the model (e.g. an op it does not know)
     */
    static InferenceEngine create(String engineClass, ByteBuffer model, int threads)
            throws RuntimeUnavailableException, ModelLoadException {
        Constructor<? extends InferenceEngine> constructor = engineConstructor(engineClass);
        try {
            return constructor.newInstance(model, threads);
        } catch (InvocationTargetException failed) {
            Throwable cause = failed.getCause();
            if (cause instanceof LinkageError) {
                // LCE ships native code for arm64-v8a, x86 and x86_64 only.
                throw new RuntimeUnavailableException("the TFLite/LCE native library cannot be "
                        + "loaded on this device (" + cause + ")");
            }
            throw new ModelLoadException("the TFLite/LCE interpreter rejected the model: "
                    + cause, cause);
        } catch (InstantiationException | IllegalAccessException broken) {
            throw new RuntimeUnavailableException(engineClass + " cannot be instantiated: "
                    + broken);
        }
    }

    private static Constructor<? extends InferenceEngine> engineConstructor(String engineClass)
            throws RuntimeUnavailableException {
        Class<?> found;
        try {
            found = Class.forName(engineClass);
        } catch (ClassNotFoundException absent) {
            throw new RuntimeUnavailableException(NOT_BUILT_IN);
        }
        if (!InferenceEngine.class.isAssignableFrom(found)) {
            throw new RuntimeUnavailableException(engineClass + " does not implement "
                    + InferenceEngine.class.getName());
        }
        try {
            return found.asSubclass(InferenceEngine.class)
                    .getConstructor(ByteBuffer.class, int.class);
        } catch (NoSuchMethodException missing) {
            throw new RuntimeUnavailableException(engineClass
                    + " has no public constructor (ByteBuffer, int)");
        }
    }
}
