package org.tflbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.Test;

/**
 * The flatbuffer reader against tiny models made by scripts/make_android_test_models.py, whose
 * facts tflbnn's Python reader (TensorFlow's generated schema code) wrote to tiny_models.json.
 */
public class TfliteModelTest {
    private static final String[] TINY_MODELS = {
        "tiny_lce.tflite", "tiny_float.tflite", "tiny_two_inputs.tflite",
    };

    @Test
    public void everyFactMatchesPythonsReader() throws Exception {
        Map<?, ?> manifest = (Map<?, ?>) Json.parse(TestResources.text("tiny_models.json"));
        for (String name : TINY_MODELS) {
            TfliteModel model = TfliteModel.read(ByteBuffer.wrap(TestResources.bytes(name)));
            assertMatchesFacts(name, (Map<?, ?>) manifest.get(name), model);
        }
    }

    /** Compares a model with facts as tflbnn's Python side writes them (also used by golden). */
    static void assertMatchesFacts(String name, Map<?, ?> facts, TfliteModel model) {
        assertEquals(name, number(facts.get("size_bytes")), model.sizeBytes());
        if (facts.containsKey("input_count")) {
            assertEquals(name, number(facts.get("input_count")), model.inputCount());
            assertEquals(name, number(facts.get("output_count")), model.outputCount());
        }
        assertArrayEquals(name, TestResources.ints(facts.get("input_shape")),
                model.inputShape());
        assertEquals(name, facts.get("input_dtype"), model.inputType());
        assertArrayEquals(name, TestResources.ints(facts.get("output_shape")),
                model.outputShape());
        assertEquals(name, facts.get("output_dtype"), model.outputType());
        Map<?, ?> ops = (Map<?, ?>) facts.get("ops");
        // Same names, counts and order (most frequent first, ties in order of appearance).
        assertEquals(name, new ArrayList<Object>(ops.keySet()),
                new ArrayList<Object>(model.opCounts().keySet()));
        for (Map.Entry<?, ?> op : ops.entrySet()) {
            assertEquals(name + " " + op.getKey(), number(op.getValue()),
                    model.opCounts().get(op.getKey()).longValue());
        }
        assertEquals(name, number(facts.get("binary_convs")), model.binaryConvCount());
        assertEquals(name, facts.get("uses_lce_ops"), model.usesLceOps());
    }

    @Test
    public void readsFromTheBuffersPositionWithoutMovingIt() throws Exception {
        byte[] model = TestResources.bytes("tiny_float.tflite");
        ByteBuffer padded = ByteBuffer.allocate(model.length + 10).order(ByteOrder.BIG_ENDIAN);
        padded.position(3);
        padded.put(model);
        padded.position(3);
        padded.limit(3 + model.length);
        TfliteModel read = TfliteModel.read(padded);
        assertEquals(model.length, read.sizeBytes());
        assertArrayEquals(new int[] {1, 4, 4, 1}, read.inputShape());
        assertEquals(3, padded.position());
        assertEquals(ByteOrder.BIG_ENDIAN, padded.order());
    }

    @Test
    public void returnedShapesAreCopies() throws Exception {
        TfliteModel model = TfliteModel.read(ByteBuffer.wrap(
                TestResources.bytes("tiny_float.tflite")));
        model.inputShape()[1] = 99;
        model.outputShape()[1] = 99;
        assertArrayEquals(new int[] {1, 4, 4, 1}, model.inputShape());
        assertArrayEquals(new int[] {1, 3}, model.outputShape());
    }

    @Test
    public void emptyAndShortFilesAreRejected() {
        assertInvalid(new byte[0], "0 bytes is too short");
        assertInvalid("TFL3TFL".getBytes(TestResources.UTF_8), "7 bytes is too short");
    }

    @Test
    public void otherFileTypesAreRejectedByTheirIdentifier() throws IOException {
        BufferedImage image = new BufferedImage(2, 2, BufferedImage.TYPE_INT_RGB);
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        assertTrue(ImageIO.write(image, "png", png));
        // A PNG starts \x89 P N G \r \n \x1a \n.
        assertInvalid(png.toByteArray(), "file identifier \"\\x0d\\x0a\\x1a\\x0a\"");
        // {\n  "format": bytes 4..8 are "for with a quote escaped.
        assertInvalid(TestResources.bytes("demo_model.json"), "not a TFLite model: file "
                + "identifier \"\\x22for\" at bytes 4..8, expected \"TFL3\"");
    }

    @Test
    public void truncatedModelsAreRejected() throws IOException {
        for (String name : TINY_MODELS) {
            byte[] model = TestResources.bytes(name);
            String message = assertInvalid(Arrays.copyOf(model, model.length / 2),
                    "corrupt TFLite model: ");
            assertTrue(message, message.contains("outside the " + model.length / 2
                    + "-byte file (truncated or corrupt)"));
        }
    }

    @Test
    public void everyTruncationGivesAModelOrAnInvalidModelException() throws IOException {
        for (String name : TINY_MODELS) {
            byte[] model = TestResources.bytes(name);
            int rejected = 0;
            for (int length = 0; length < model.length; length++) {
                if (!readsOrRejects(Arrays.copyOf(model, length))) {
                    rejected++;
                }
            }
            // The header and tables come first; at least everything up to the tables is needed.
            assertTrue(name + ": only " + rejected + " truncations rejected", rejected > 100);
        }
    }

    @Test
    public void corruptBytesGiveAModelOrAnInvalidModelException() throws IOException {
        Random random = new Random(42);
        for (String name : TINY_MODELS) {
            byte[] model = TestResources.bytes(name);
            int rejected = 0;
            for (int trial = 0; trial < 3000; trial++) {
                byte[] corrupt = model.clone();
                int flips = 1 + random.nextInt(4);
                for (int i = 0; i < flips; i++) {
                    // Mostly within the first kilobyte, where the offsets and vtables are.
                    int at = random.nextInt(random.nextBoolean() ? Math.min(1024, model.length)
                            : model.length);
                    corrupt[at] = (byte) random.nextInt(256);
                }
                if (!readsOrRejects(corrupt)) {
                    rejected++;
                }
            }
            assertTrue(name + ": no corruption was detected", rejected > 0);
        }
    }

    @Test
    public void offsetsOutsideTheFileAreNamed() throws IOException {
        byte[] model = TestResources.bytes("tiny_float.tflite");
        byte[] rootBeyondEnd = model.clone();
        ByteBuffer.wrap(rootBeyondEnd).order(ByteOrder.LITTLE_ENDIAN).putInt(0, model.length);
        assertInvalid(rootBeyondEnd, "corrupt TFLite model: model points to bytes "
                + model.length + ".." + (model.length + 4) + ", outside the " + model.length
                + "-byte file");

        byte[] vtableBeyondStart = model.clone();
        ByteBuffer buffer = ByteBuffer.wrap(vtableBeyondStart).order(ByteOrder.LITTLE_ENDIAN);
        int root = buffer.getInt(0);
        buffer.putInt(root, root + 1000); // the vtable would start 1000 bytes before the file
        assertInvalid(vtableBeyondStart,
                "corrupt TFLite model: model (vtable) points to bytes -1000");
    }

    @Test
    public void builtinCodesAbove127ComeFromTheNewField() throws Exception {
        // GELU is code 150; the int8 deprecated field holds 127 (PLACEHOLDER_FOR_GREATER_OP_CODES).
        TfliteModel model = TfliteModel.read(ByteBuffer.wrap(
                TestResources.bytes("tiny_float.tflite")));
        assertEquals(Integer.valueOf(1), model.opCounts().get("GELU"));
        assertFalse(model.opCounts().containsKey("PLACEHOLDER_FOR_GREATER_OP_CODES"));
    }

    @Test
    public void floatModelHasNoLceOps() throws Exception {
        TfliteModel model = TfliteModel.read(ByteBuffer.wrap(
                TestResources.bytes("tiny_float.tflite")));
        assertFalse(model.usesLceOps());
        assertEquals(0, model.binaryConvCount());
        assertEquals("2796 bytes, input [1, 4, 4, 1] float32, output [1, 3] float32",
                model.toString());
    }

    private static boolean readsOrRejects(byte[] bytes) {
        try {
            TfliteModel.read(ByteBuffer.wrap(bytes));
            return true;
        } catch (InvalidModelException expected) {
            assertTrue(expected.getMessage(), expected.getMessage().contains("TFLite model"));
            return false;
        }
    }

    private static String assertInvalid(byte[] bytes, String message) {
        try {
            TfliteModel model = TfliteModel.read(ByteBuffer.wrap(bytes));
            fail("read invalid bytes as a model: " + model);
            return null;
        } catch (InvalidModelException error) {
            assertTrue("'" + error.getMessage() + "' should contain '" + message + "'",
                    error.getMessage().contains(message));
            return error.getMessage();
        }
    }

    private static long number(Object value) {
        return ((Number) value).longValue();
    }
}
