package org.tflbnn.demo;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotSame;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;
import org.tflbnn.demo.core.ClassificationResult;
import org.tflbnn.demo.core.ModelMetadata;
import org.tflbnn.demo.core.Prediction;
import org.tflbnn.demo.core.Preprocessing;

/**
 * ClassifierSession with the bundled model and the test double of the LCE engine, found by
 * RuntimeLoader under the production class name: engine lifecycle, thread-count rebuilds, and
 * the ranking of what the engine computed from the preprocessed image.
 */
public class ClassifierSessionTest {
    /**
     * Brightness step of the pixels that feed each class: the ranking is neither the label
     * order nor its reverse.
     */
    private static final int[] BRIGHTNESS_OF_CLASS = {3, 9, 0, 6, 1, 8, 2, 7, 5, 4};

    private LoadedModel model;
    private ClassifierSession session;

    @Before
    public void setUp() throws Exception {
        RecordingEngine.reset();
        model = AppFiles.bundledModel();
        session = new ClassifierSession(RecordingEngine.class.getName());
    }

    @After
    public void tearDown() {
        session.close();
        RecordingEngine.reset();
    }

    /** Grey level of pixel i of the test image (row-major, model-sized so nothing resizes). */
    private static int level(int i) {
        return BRIGHTNESS_OF_CLASS[i % 10] * 25 + (i * 7) % 11;
    }

    private PixelImage testImage() {
        Preprocessing p = model.metadata().preprocessing();
        assertEquals("test image assumes one grey channel", 1, p.channels());
        int[] argb = new int[p.width() * p.height()];
        for (int i = 0; i < argb.length; i++) {
            int v = level(i);
            argb[i] = 0xff000000 | (v << 16) | (v << 8) | v;
        }
        return new PixelImage(argb, p.width(), p.height(), null, "test image");
    }

    /**
     * What the double engine must output for {@link #testImage}, worked out here in double from
     * the metadata's normalisation: the mean of (level / 255 - mean) / std over the pixels i
     * with i % classes == k.
     */
    private double[] expectedLogits() {
        Preprocessing p = model.metadata().preprocessing();
        int classes = model.metadata().labels().size();
        double[] sums = new double[classes];
        int[] counts = new int[classes];
        for (int i = 0; i < p.width() * p.height(); i++) {
            sums[i % classes] += (level(i) / 255.0 - p.mean()[0]) / p.std()[0];
            counts[i % classes]++;
        }
        for (int k = 0; k < classes; k++) {
            sums[k] /= counts[k];
        }
        return sums;
    }

    /** All bytes of a buffer, whatever its position. */
    private static byte[] contents(ByteBuffer buffer) {
        byte[] bytes = new byte[buffer.capacity()];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = buffer.get(i);
        }
        return bytes;
    }

    private static RecordingEngine engine(int index) {
        return RecordingEngine.CREATED.get(index);
    }

    @Test
    public void classifyWithoutAModelFails() throws Exception {
        try {
            session.classify(testImage(), 1, 1);
            fail("expected IllegalStateException");
        } catch (IllegalStateException expected) {
            assertEquals("no model is loaded", expected.getMessage());
        }
        assertTrue(RecordingEngine.CREATED.isEmpty());
    }

    @Test
    public void setModelBuildsAnEngineOnTheModelBytes() throws Exception {
        session.setModel(model, 2);
        assertEquals(1, RecordingEngine.CREATED.size());
        RecordingEngine built = engine(0);
        assertEquals(2, built.threads);
        assertEquals(0, built.modelPosition);
        assertTrue(built.model.isDirect());
        assertEquals(ByteOrder.nativeOrder(), built.model.order());
        byte[] expected = AppFiles.asset(ModelReader.ASSET_MODEL);
        assertArrayEquals(expected, contents(built.model));
    }

    @Test
    public void classifyRanksWhatTheEngineComputedFromTheImage() throws Exception {
        session.setModel(model, 1);
        ClassificationResult result = session.classify(testImage(), 1, 3);

        double[] logits = expectedLogits();
        float[] outputs = result.outputs();
        assertEquals(logits.length, outputs.length);
        for (int k = 0; k < logits.length; k++) {
            assertEquals("output " + k, logits[k], outputs[k], 1e-5);
        }
        // Softmax and ranking, independently of the core's Predictions.
        double max = Double.NEGATIVE_INFINITY;
        for (double logit : logits) {
            max = Math.max(max, logit);
        }
        final double[] probabilities = new double[logits.length];
        double total = 0;
        for (int k = 0; k < logits.length; k++) {
            probabilities[k] = Math.exp(logits[k] - max);
            total += probabilities[k];
        }
        List<Integer> order = new ArrayList<Integer>();
        for (int k = 0; k < logits.length; k++) {
            probabilities[k] /= total;
            order.add(k);
        }
        Collections.sort(order, new Comparator<Integer>() {
            @Override
            public int compare(Integer a, Integer b) {
                return Double.compare(probabilities[b], probabilities[a]);
            }
        });

        List<Prediction> top = result.top();
        assertEquals(ClassifierSession.TOP_K, top.size());
        List<String> labels = model.metadata().labels();
        for (int rank = 0; rank < ClassifierSession.TOP_K; rank++) {
            int k = order.get(rank);
            Prediction prediction = top.get(rank);
            assertEquals("rank " + rank, k, prediction.index);
            assertEquals(labels.get(k), prediction.label);
            assertEquals(probabilities[k], prediction.probability, 1e-5);
        }
        // BRIGHTNESS_OF_CLASS puts class 1 (Trouser) first, then 5, 7, 3, 8.
        assertEquals(Arrays.asList(1, 5, 7, 3, 8), order.subList(0, ClassifierSession.TOP_K));

        assertEquals(3, engine(0).runs());
        assertEquals(3, result.latency().runs());
    }

    @Test
    public void sameThreadCountReusesTheEngine() throws Exception {
        session.setModel(model, 2);
        session.classify(testImage(), 2, 1);
        session.classify(testImage(), 2, 2);
        assertEquals(1, RecordingEngine.CREATED.size());
        assertEquals(3, engine(0).runs());
        assertFalse(engine(0).isClosed());
    }

    @Test
    public void newThreadCountClosesTheEngineAndBuildsAnother() throws Exception {
        session.setModel(model, 2);
        session.classify(testImage(), 4, 1);
        assertEquals(2, RecordingEngine.CREATED.size());
        assertTrue(engine(0).isClosed());
        assertEquals(0, engine(0).runs());
        assertEquals(4, engine(1).threads);
        assertFalse(engine(1).isClosed());
        assertEquals(1, engine(1).runs());

        session.classify(testImage(), 4, 1);
        session.classify(testImage(), 1, 1);
        assertEquals(3, RecordingEngine.CREATED.size());
        assertTrue(engine(1).isClosed());
        assertEquals(1, engine(2).threads);
    }

    @Test
    public void newModelClosesTheOldEngine() throws Exception {
        session.setModel(model, 1);
        LoadedModel other = AppFiles.bundledModel();
        session.setModel(other, 1);
        assertEquals(2, RecordingEngine.CREATED.size());
        assertTrue(engine(0).isClosed());
        assertFalse(engine(1).isClosed());
        assertNotSame(engine(0).model, engine(1).model);
        session.classify(testImage(), 1, 1);
        assertEquals(0, engine(0).runs());
        assertEquals(1, engine(1).runs());
    }

    @Test
    public void closeReleasesTheEngineAndTheModelStays() throws Exception {
        session.setModel(model, 1);
        session.close();
        assertTrue(engine(0).isClosed());
        session.close(); // a second close does nothing
        // The model is still current: classifying builds a new engine.
        session.classify(testImage(), 1, 1);
        assertEquals(2, RecordingEngine.CREATED.size());
        assertEquals(1, engine(1).runs());
    }

    @Test
    public void failingCloseIsIgnoredAndTheEngineDropped() throws Exception {
        session.setModel(model, 1);
        RecordingEngine.failNextClose(new IOException("native free failed"));
        session.classify(testImage(), 2, 1);
        assertEquals(2, RecordingEngine.CREATED.size());
        assertTrue(engine(0).isClosed());
        assertEquals(1, engine(1).runs());
    }

    @Test
    public void rejectedModelStaysCurrentAndIsRetried() throws Exception {
        RecordingEngine.failNextConstruction(
                new IllegalArgumentException("Didn't find custom op for name 'LceBconv2d'"));
        try {
            session.setModel(model, 1);
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertEquals("the TFLite/LCE interpreter rejected the model: "
                    + "java.lang.IllegalArgumentException: Didn't find custom op for name "
                    + "'LceBconv2d'", expected.getMessage());
        }
        assertTrue(RecordingEngine.CREATED.isEmpty());
        ClassificationResult result = session.classify(testImage(), 1, 1);
        assertEquals(1, RecordingEngine.CREATED.size());
        assertEquals(ClassifierSession.TOP_K, result.top().size());
    }

    @Test
    public void missingNativeLibraryIsRuntimeUnavailable() throws Exception {
        RecordingEngine.failNextConstruction(new UnsatisfiedLinkError("no arm build"));
        try {
            session.setModel(model, 1);
            fail("expected RuntimeUnavailableException");
        } catch (RuntimeUnavailableException expected) {
            assertTrue(expected.getMessage(), expected.getMessage().startsWith(
                    "the TFLite/LCE native library cannot be loaded on this device"));
        }
    }

    @Test
    public void metadataThatDoesNotFitIsAMessageNotACrash() throws Exception {
        // ModelReader rejects such a pair; the session still reports it rather than crashing.
        ModelMetadata three = new ModelMetadata("three", Arrays.asList("a", "b", "c"),
                model.metadata().preprocessing(), Collections.<String, Object>emptyMap(),
                model.metadata().modelSha256());
        LoadedModel mismatched = new LoadedModel("net.tflite", "three.json", model.bytes(),
                model.tflite(), three);
        session.setModel(mismatched, 1);
        try {
            session.classify(testImage(), 1, 1);
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertEquals("three.json does not match net.tflite: model.json has 3 labels but the "
                    + "model has 10 outputs (output shape [1, 10])", expected.getMessage());
        }
        assertEquals(0, engine(0).runs());
    }

    @Test
    public void engineGetsTheSameModelBufferContentEveryTime() throws Exception {
        session.setModel(model, 1);
        session.classify(testImage(), 2, 1);
        ByteBuffer first = engine(0).model;
        ByteBuffer second = engine(1).model;
        assertNotSame(first, second);
        assertEquals(0, engine(1).modelPosition);
        assertEquals(first.capacity(), second.capacity());
        assertArrayEquals(contents(first), contents(second));
        assertSame(ByteOrder.nativeOrder(), second.order());
    }
}
