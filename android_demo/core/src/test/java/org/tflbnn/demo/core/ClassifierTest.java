package org.tflbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.junit.Test;

public class ClassifierTest {
    private static final List<String> LABELS = Arrays.asList("left", "right", "flat");

    /**
     * A linear classifier over the 4x4 grey input: "left" sums the two left columns, "right"
     * the two right columns, "flat" is 0.25 times the sum of all pixels. It reads the input with
     * relative gets, so it also proves the classifier rewinds the buffer before each run.
     */
    private static final class LinearEngine implements InferenceEngine {
        int runs;
        boolean closed;

        @Override
        public void run(ByteBuffer input, float[] logits) {
            runs++;
            Arrays.fill(logits, 0);
            for (int y = 0; y < 4; y++) {
                for (int x = 0; x < 4; x++) {
                    float value = input.getFloat();
                    logits[x < 2 ? 0 : 1] += value;
                    logits[2] += 0.25f * value;
                }
            }
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private static TfliteModel tinyFloatModel() throws IOException, InvalidModelException {
        // Input [1, 4, 4, 1] float32, output [1, 3] float32 (see tiny_models.json).
        return TfliteModel.read(ByteBuffer.wrap(TestResources.bytes("tiny_float.tflite")));
    }

    private static ModelMetadata metadata(int height, int width, int channels,
                                          List<String> labels) {
        double[] zeros = new double[channels];
        double[] ones = new double[channels];
        Arrays.fill(ones, 1.0);
        return new ModelMetadata("test", labels,
                new Preprocessing(height, width, channels, zeros, ones, 1.0),
                Collections.<String, Object>emptyMap(), null);
    }

    @Test
    public void matchingModelAndMetadataAreCompatible() throws Exception {
        Classifier.checkCompatible(tinyFloatModel(), metadata(4, 4, 1, LABELS));
    }

    @Test
    public void wrongInputShapeNamesBothSides() throws Exception {
        assertIncompatible(tinyFloatModel(), metadata(5, 4, 1, LABELS),
                "model.json preprocessing gives input [1, 5, 4, 1] but the model expects "
                        + "[1, 4, 4, 1]");
        assertIncompatible(tinyFloatModel(), metadata(4, 4, 3, LABELS),
                "gives input [1, 4, 4, 3] but the model expects [1, 4, 4, 1]");
    }

    @Test
    public void labelCountMismatchNamesBothSides() throws Exception {
        assertIncompatible(tinyFloatModel(),
                metadata(4, 4, 1, Arrays.asList("a", "b", "c", "d")),
                "model.json has 4 labels but the model has 3 outputs (output shape [1, 3])");
    }

    @Test
    public void modelsWithTwoInputsAreRejected() throws Exception {
        TfliteModel twoInputs = TfliteModel.read(ByteBuffer.wrap(
                TestResources.bytes("tiny_two_inputs.tflite")));
        assertIncompatible(twoInputs, metadata(1, 2, 1, Arrays.asList("a", "b")),
                "expected a model with one input and one output, found 2 and 1");
    }

    @Test
    public void constructorChecksCompatibility() throws Exception {
        try {
            new Classifier(new LinearEngine(), tinyFloatModel(), metadata(4, 4, 1,
                    Arrays.asList("a", "b")));
            fail("built a classifier for 2 labels and 3 outputs");
        } catch (InvalidModelException expected) {
            assertTrue(expected.getMessage().contains("2 labels"));
        }
    }

    @Test
    public void classifyPreprocessesRunsTimesAndRanks() throws Exception {
        LinearEngine engine = new LinearEngine();
        Classifier classifier = new Classifier(engine, tinyFloatModel(),
                metadata(4, 4, 1, LABELS));
        // White left half, black right half: inputs 1 and 0 (mean 0, std 1), so the logits are
        // left 8, right 0, flat 0.25 * 8 = 2. softmax([8, 0, 2]) (numpy, float64) =
        // 0.9971936827..., 0.0003345212..., 0.0024717960...
        int[] image = new int[16];
        for (int i = 0; i < 16; i++) {
            image[i] = i % 4 < 2 ? 0xffffffff : 0xff000000;
        }
        ClassificationResult result = classifier.classify(image, 4, 4, 5, 2);
        assertEquals(5, engine.runs);
        assertEquals(5, result.latency().runs());
        assertTrue(result.latency().minMs() >= 0);
        assertTrue(result.latency().minMs() <= result.latency().medianMs());
        assertTrue(result.latency().medianMs() <= result.latency().p90Ms());
        assertArrayEquals(new float[] {8, 0, 2}, result.outputs(), 0);
        float[] expectedInput = new float[16];
        for (int i = 0; i < 16; i++) {
            expectedInput[i] = i % 4 < 2 ? 1 : 0;
        }
        assertArrayEquals(expectedInput, result.input(), 0);
        List<Prediction> top = result.top();
        assertEquals(2, top.size());
        assertEquals(0, top.get(0).index);
        assertEquals("left", top.get(0).label);
        assertEquals(0.9971936827, top.get(0).probability, 1e-10);
        assertEquals(2, top.get(1).index);
        assertEquals("flat", top.get(1).label);
        assertEquals(0.0024717960, top.get(1).probability, 1e-10);
        assertTrue("the classifier must not close an engine it does not own", !engine.closed);
    }

    @Test
    public void topKIsClippedToTheClassCount() throws Exception {
        Classifier classifier = new Classifier(new LinearEngine(), tinyFloatModel(),
                metadata(4, 4, 1, LABELS));
        ClassificationResult result = classifier.classify(new int[16], 4, 4, 1, 10);
        assertEquals(3, result.top().size());
        // All black: logits 0, 0, 0, a uniform distribution in index order.
        assertEquals(0, result.top().get(0).index);
        assertEquals(1.0 / 3, result.top().get(2).probability, 1e-15);
    }

    @Test
    public void engineFailuresPropagate() throws Exception {
        final IllegalStateException failure = new IllegalStateException("runtime failed");
        InferenceEngine failing = new InferenceEngine() {
            @Override
            public void run(ByteBuffer input, float[] logits) {
                throw failure;
            }

            @Override
            public void close() {
            }
        };
        Classifier classifier = new Classifier(failing, tinyFloatModel(),
                metadata(4, 4, 1, LABELS));
        try {
            classifier.classify(new int[16], 4, 4, 1, 1);
            fail("engine failure was swallowed");
        } catch (IllegalStateException error) {
            assertSame(failure, error);
        }
    }

    @Test
    public void invalidRunsAndTopKAreRejected() throws Exception {
        Classifier classifier = new Classifier(new LinearEngine(), tinyFloatModel(),
                metadata(4, 4, 1, LABELS));
        try {
            classifier.classify(new int[16], 4, 4, 0, 1);
            fail("accepted 0 runs");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("runs must be at least 1"));
        }
        try {
            classifier.classify(new int[16], 4, 4, 1, 0);
            fail("accepted topK 0");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("topK must be at least 1"));
        }
    }

    private static void assertIncompatible(TfliteModel model, ModelMetadata metadata,
                                           String message) {
        try {
            Classifier.checkCompatible(model, metadata);
            fail("accepted an incompatible model: " + message);
        } catch (InvalidModelException error) {
            assertTrue("'" + error.getMessage() + "' should contain '" + message + "'",
                    error.getMessage().contains(message));
        }
    }
}
