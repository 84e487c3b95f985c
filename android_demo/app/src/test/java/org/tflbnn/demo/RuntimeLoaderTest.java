package org.tflbnn.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;
import org.tflbnn.demo.core.InferenceEngine;

public class RuntimeLoaderTest {

    /** An engine whose constructor fails as TFLite does for an op it cannot resolve. */
    public static final class RejectingEngine implements InferenceEngine {
        static final IllegalArgumentException FAILURE = new IllegalArgumentException(
                "Internal error: Cannot create interpreter: Didn't find custom op LceBconv2d");

        public RejectingEngine(ByteBuffer model, int threads) {
            throw FAILURE;
        }

        @Override
        public void run(ByteBuffer input, float[] logits) {
        }

        @Override
        public void close() {
        }
    }

    /** An engine whose native library is missing, as on an ABI that LCE does not ship. */
    public static final class NativeFailureEngine implements InferenceEngine {
        public NativeFailureEngine(ByteBuffer model, int threads) {
            throw new UnsatisfiedLinkError("dlopen failed: library \"libtensorflowlite_jni.so\" "
                    + "not found");
        }

        @Override
        public void run(ByteBuffer input, float[] logits) {
        }

        @Override
        public void close() {
        }
    }

    /** An engine without the (ByteBuffer, int) constructor. */
    public static final class NoConstructorEngine implements InferenceEngine {
        public NoConstructorEngine(ByteBuffer model) {
        }

        @Override
        public void run(ByteBuffer input, float[] logits) {
        }

        @Override
        public void close() {
        }
    }

    /** An engine that cannot be instantiated. */
    public abstract static class AbstractEngine implements InferenceEngine {
        public AbstractEngine(ByteBuffer model, int threads) {
        }
    }

    private ByteBuffer model;

    @Before
    public void setUp() throws Exception {
        RecordingEngine.reset();
        byte[] bytes = AppFiles.asset(ModelReader.ASSET_MODEL);
        model = ByteBuffer.allocateDirect(bytes.length).order(ByteOrder.nativeOrder());
        model.put(bytes);
        model.rewind();
    }

    @After
    public void tearDown() {
        RecordingEngine.reset();
    }

    @Test
    public void engineClassIsTheLceSourceWithTheConstructorLookedUp() throws Exception {
        // CI cannot compile app/src/lce (no LCE AAR), so check by its source that the name and
        // the constructor RuntimeLoader looks up are the ones that file declares.
        assertEquals("org.tflbnn.demo.runtime.LceInterpreterEngine", RuntimeLoader.ENGINE_CLASS);
        File source = AppFiles.file("src/lce/java/"
                + RuntimeLoader.ENGINE_CLASS.replace('.', '/') + ".java");
        String text = new String(AppFiles.bytes(source), Charset.forName("UTF-8"));
        assertTrue(text, text.contains("package org.tflbnn.demo.runtime;"));
        assertTrue(text, text.contains(
                "public final class LceInterpreterEngine implements InferenceEngine"));
        assertTrue(text, text.contains(
                "public LceInterpreterEngine(ByteBuffer model, int threads)"));
    }

    @Test
    public void createBuildsTheEngineNamedEngineClass() throws Exception {
        InferenceEngine engine = RuntimeLoader.create(RecordingEngine.class.getName(), model, 3);
        assertTrue(engine instanceof RecordingEngine);
        RecordingEngine built = (RecordingEngine) engine;
        assertSame(model, built.model);
        assertEquals(3, built.threads);
        assertEquals(1, RecordingEngine.CREATED.size());
    }

    @Test
    public void absentEngineClassSaysTheApkHasNoRuntime() throws Exception {
        try {
            RuntimeLoader.create("org.tflbnn.demo.runtime.NoSuchEngine", model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertEquals(RuntimeLoader.NOT_BUILT_IN, expected.getMessage());
            assertTrue(expected.getMessage().contains("built without the TFLite/LCE runtime"));
        }
    }

    @Test
    public void classThatIsNoEngineIsUnavailable() throws Exception {
        try {
            RuntimeLoader.create("java.lang.String", model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertEquals("java.lang.String does not implement "
                    + "org.tflbnn.demo.core.InferenceEngine", expected.getMessage());
        }
    }

    @Test
    public void engineWithoutTheConstructorIsUnavailable() throws Exception {
        String name = NoConstructorEngine.class.getName();
        try {
            RuntimeLoader.create(name, model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertEquals(name + " has no public constructor (ByteBuffer, int)",
                    expected.getMessage());
        }
    }

    @Test
    public void abstractEngineCannotBeInstantiated() throws Exception {
        String name = AbstractEngine.class.getName();
        try {
            RuntimeLoader.create(name, model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertTrue(expected.getMessage(),
                    expected.getMessage().startsWith(name + " cannot be instantiated: "));
        }
    }

    @Test
    public void interpreterRejectingTheModelIsAModelError() throws Exception {
        try {
            RuntimeLoader.create(RejectingEngine.class.getName(), model, 1);
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertSame(RejectingEngine.FAILURE, expected.getCause());
            assertEquals("the TFLite/LCE interpreter rejected the model: "
                    + RejectingEngine.FAILURE, expected.getMessage());
        }
    }

    @Test
    public void missingNativeLibraryMeansNoRuntimeOnThisDevice() throws Exception {
        try {
            RuntimeLoader.create(NativeFailureEngine.class.getName(), model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertTrue(expected.getMessage(), expected.getMessage().startsWith(
                    "the TFLite/LCE native library cannot be loaded on this device "
                            + "(java.lang.UnsatisfiedLinkError: dlopen failed"));
        }
    }

    @Test
    public void defaultEngineFailuresAreMappedToo() throws Exception {
        RecordingEngine.failNextConstruction(new IllegalArgumentException("bad op"));
        try {
            RuntimeLoader.create(RecordingEngine.class.getName(), model, 1);
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertEquals("the TFLite/LCE interpreter rejected the model: "
                    + "java.lang.IllegalArgumentException: bad op", expected.getMessage());
        }
        RecordingEngine.failNextConstruction(new UnsatisfiedLinkError("no .so"));
        try {
            RuntimeLoader.create(RecordingEngine.class.getName(), model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertTrue(expected.getMessage(), expected.getMessage().contains("no .so"));
        }
        assertEquals(0, RecordingEngine.CREATED.size());
    }
}
