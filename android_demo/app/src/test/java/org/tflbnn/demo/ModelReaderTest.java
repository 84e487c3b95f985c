package org.tflbnn.demo;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.util.Arrays;
import org.junit.Before;
import org.junit.Test;
import org.tflbnn.demo.core.InvalidModelException;
import org.tflbnn.demo.core.MetadataException;
import org.tflbnn.demo.core.ModelDigest;

/**
 * What the app says about a picked or bundled model and metadata pair: files that are not a
 * TFLite model, metadata that is missing, not JSON, not tflbnn metadata, or not for this model
 * all become a ModelLoadException naming the file, never another exception.
 */
public class ModelReaderTest {
    private static final Charset UTF_8 = Charset.forName("UTF-8");
    private static final String TEN_LABELS = "\"T-shirt/top\", \"Trouser\", \"Pullover\", "
            + "\"Dress\", \"Coat\", \"Sandal\", \"Shirt\", \"Sneaker\", \"Bag\", \"Ankle boot\"";

    private byte[] model;
    private byte[] metadata;
    /** The bundled model's SHA-256 (ModelDigestTest checks the digest on known vectors). */
    private String modelSha256;

    @Before
    public void setUp() throws Exception {
        model = AppFiles.asset(ModelReader.ASSET_MODEL);
        metadata = AppFiles.asset(ModelReader.ASSET_METADATA);
        modelSha256 = ModelDigest.sha256Hex(model);
    }

    /**
     * tflbnn metadata for a 28x28 grey input with the given labels and the given model_sha256
     * field (a JSON value, or null to leave the field out), as a .json file's bytes.
     */
    private static byte[] metadataJson(int height, String labels, String sha256Field) {
        return ("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, \"name\": \"test\", "
                + "\"labels\": [" + labels + "], \"preprocessing\": {\"height\": " + height
                + ", \"width\": 28, \"channels\": 1, \"mean\": [0.5], \"std\": [0.25], "
                + "\"center_crop\": 1.0, \"resize\": \"bilinear\", \"layout\": \"NHWC\", "
                + "\"dtype\": \"float32\"}"
                + (sha256Field == null ? "" : ", \"model_sha256\": " + sha256Field)
                + "}").getBytes(UTF_8);
    }

    /** {@link #metadataJson(int, String, String)} recording the bundled model's digest. */
    private byte[] metadataJson(int height, String labels) {
        return metadataJson(height, labels, "\"" + modelSha256 + "\"");
    }

    /** The bundled model with 64 bytes inverted in the middle of the file (its weights). */
    private byte[] modelWithFlippedWeights() {
        byte[] flipped = model.clone();
        for (int i = model.length / 2; i < model.length / 2 + 64; i++) {
            flipped[i] ^= (byte) 0xff;
        }
        return flipped;
    }

    /** The message of the ModelLoadException that check throws; fails if it returns. */
    private static ModelLoadException checkFails(String modelName, byte[] modelBytes,
            String metadataName, byte[] metadataBytes) {
        try {
            ModelReader.check(modelName, modelBytes, metadataName, metadataBytes);
        } catch (ModelLoadException expected) {
            return expected;
        }
        throw new AssertionError("expected ModelLoadException");
    }

    /** A stream that remembers being closed and can fail after some bytes. */
    private static final class TrackedStream extends InputStream {
        private final InputStream content;
        private final int failAfter;
        private int read;
        boolean closed;

        TrackedStream(byte[] content, int failAfter) {
            this.content = new ByteArrayInputStream(content);
            this.failAfter = failAfter;
        }

        TrackedStream(byte[] content) {
            this(content, Integer.MAX_VALUE);
        }

        @Override
        public int read() throws IOException {
            if (read >= failAfter) {
                throw new IOException("connection reset");
            }
            int value = content.read();
            if (value >= 0) {
                read++;
            }
            return value;
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private static ModelReader.StreamOpener opening(final InputStream stream) {
        return new ModelReader.StreamOpener() {
            @Override
            public InputStream open() {
                return stream;
            }
        };
    }

    private static ModelReader.StreamOpener failing(final IOException failure) {
        return new ModelReader.StreamOpener() {
            @Override
            public InputStream open() throws IOException {
                throw failure;
            }
        };
    }

    // --- check: the pair -------------------------------------------------------------------

    @Test
    public void bundledPairIsAccepted() throws Exception {
        LoadedModel loaded = ModelReader.check("model.tflite", model, "model.json", metadata);
        assertEquals("model.tflite", loaded.fileName());
        assertEquals("model.json", loaded.metadataFileName());
        assertEquals(model.length, loaded.tflite().sizeBytes());
        int[] shape = loaded.tflite().inputShape();
        assertEquals(4, shape.length);
        assertEquals(loaded.metadata().preprocessing().height(), shape[1]);
        assertEquals(loaded.metadata().labels().size(), loaded.tflite().outputShape()[1]);
        assertTrue(loaded.bytes().isDirect());
        assertEquals(ByteOrder.nativeOrder(), loaded.bytes().order());
    }

    @Test
    public void fileThatIsNotAModelIsNamed() {
        byte[] png = {(byte) 0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13};
        ModelLoadException error = checkFails("cat.png", png, "model.json", metadata);
        assertEquals("cat.png: not a TFLite model: file identifier \"\\x0d\\x0a\\x1a\\x0a\" at "
                + "bytes 4..8, expected \"TFL3\"", error.getMessage());
        assertTrue(error.getCause() instanceof InvalidModelException);
    }

    @Test
    public void emptyModelFileIsNamed() {
        assertEquals("empty.tflite: not a TFLite model: 0 bytes is too short (a model starts with "
                + "an 8-byte header ending in \"TFL3\")",
                checkFails("empty.tflite", new byte[0], "model.json", metadata).getMessage());
    }

    @Test
    public void metadataPickedAsTheModelIsNotAModel() {
        String message = checkFails("model.json", metadata, "model.tflite", model).getMessage();
        assertTrue(message, message.startsWith("model.json: not a TFLite model: file identifier "));
    }

    @Test
    public void truncatedModelIsCorruptNotACrash() {
        // Cut anywhere before the last few bytes (the flatbuffer's tail padding), a model points
        // outside the file; the reader says so instead of throwing IndexOutOfBounds.
        for (int length : new int[] {8, 64, 4096, model.length / 2, model.length - 1000}) {
            ModelLoadException error = checkFails("model.tflite",
                    Arrays.copyOf(model, length), "model.json", metadata);
            assertTrue(length + ": " + error.getMessage(), error.getMessage().startsWith(
                    "model.tflite: corrupt TFLite model"));
            assertTrue(error.getCause() instanceof InvalidModelException);
        }
    }

    @Test
    public void emptyMetadataIsNotJson() {
        ModelLoadException error = checkFails("model.tflite", model, "model.json", new byte[0]);
        assertTrue(error.getMessage(), error.getMessage().startsWith(
                "model.json: model metadata is not valid JSON: "));
        assertTrue(error.getCause() instanceof MetadataException);
    }

    @Test
    public void invalidJsonIsNamed() {
        String message = checkFails("net.tflite", model, "net.json",
                "{\"format\": \"tflbnn-model-metadata\",".getBytes(UTF_8)).getMessage();
        assertTrue(message, message.startsWith("net.json: model metadata is not valid JSON: "));
    }

    @Test
    public void jsonThatIsNotTflbnnMetadataIsNamed() {
        assertEquals("labels.json: format is missing: not a tflbnn model metadata file (it has "
                + "no \"format\": \"tflbnn-model-metadata\")",
                checkFails("net.tflite", model, "labels.json", "{\"labels\": [\"cat\"]}"
                        .getBytes(UTF_8)).getMessage());
    }

    @Test
    public void metadataWithoutLabelsIsNamed() {
        byte[] json = ("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, "
                + "\"preprocessing\": {}}").getBytes(UTF_8);
        assertEquals("net.json: labels is missing",
                checkFails("net.tflite", model, "net.json", json).getMessage());
    }

    @Test
    public void metadataForAnotherLabelCountDoesNotMatch() {
        ModelLoadException error = checkFails("net.tflite", model, "net.json",
                metadataJson(28, "\"cat\", \"dog\", \"bird\""));
        assertEquals("net.json does not match net.tflite: model.json has 3 labels but the model "
                + "has 10 outputs (output shape [1, 10])", error.getMessage());
        assertTrue(error.getCause() instanceof InvalidModelException);
    }

    @Test
    public void metadataForAnotherInputSizeDoesNotMatch() {
        assertEquals("net.json does not match net.tflite: model.json preprocessing gives input "
                + "[1, 32, 28, 1] but the model expects [1, 28, 28, 1]",
                checkFails("net.tflite", model, "net.json", metadataJson(32, TEN_LABELS))
                        .getMessage());
    }

    // --- the model's SHA-256 ---------------------------------------------------------------

    @Test
    public void bundledMetadataRecordsTheBundledModelsDigest() throws Exception {
        LoadedModel loaded = AppFiles.bundledModel();
        assertEquals(modelSha256, loaded.metadata().modelSha256());
    }

    @Test
    public void modelWithFlippedWeightsIsRefusedBeforeUse() throws Exception {
        byte[] flipped = modelWithFlippedWeights();
        String actual = ModelDigest.sha256Hex(flipped);
        ModelLoadException error = checkFails("model.tflite", flipped, "model.json", metadata);
        // The flatbuffer still parses: without the digest the app would classify with it.
        assertEquals(model.length, org.tflbnn.demo.core.TfliteModel.read(
                java.nio.ByteBuffer.wrap(flipped)).sizeBytes());
        assertEquals("model.tflite: SHA-256 " + actual + " does not match model.json "
                + "model_sha256 " + modelSha256 + ": the model file was modified or belongs to "
                + "other metadata; re-run tflbnn convert and copy the .tflite and .json it writes "
                + "together", error.getMessage());
        assertTrue(error.getCause() instanceof InvalidModelException);
        // What the status line shows: the message as is.
        assertEquals(error.getMessage(), ErrorMessages.describe(error));
    }

    @Test
    public void bundledModelWithFlippedWeightsNamesTheAssets() {
        try {
            ModelReader.fromBundle(opening(new TrackedStream(modelWithFlippedWeights())),
                    opening(new TrackedStream(metadata)));
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertTrue(expected.getMessage(), expected.getMessage().startsWith(
                    "assets/model.tflite: SHA-256 "));
            assertTrue(expected.getMessage(), expected.getMessage().contains(
                    " does not match assets/model.json model_sha256 " + modelSha256));
        }
    }

    @Test
    public void metadataOfAnotherModelIsRefused() {
        String other = ModelDigest.sha256Hex(new byte[] {1, 2, 3});
        String message = checkFails("net.tflite", model, "net.json",
                metadataJson(28, TEN_LABELS, "\"" + other + "\"")).getMessage();
        assertEquals("net.tflite: SHA-256 " + modelSha256 + " does not match net.json "
                + "model_sha256 " + other + ": the model file was modified or belongs to other "
                + "metadata; re-run tflbnn convert and copy the .tflite and .json it writes "
                + "together", message);
    }

    @Test
    public void metadataWithoutADigestIsRefused() {
        ModelLoadException error = checkFails("net.tflite", model, "net.json",
                metadataJson(28, TEN_LABELS, null));
        assertEquals("net.json: model_sha256 is missing, so nothing proves that net.tflite is "
                + "the model it was written for; convert the model again with tflbnn convert "
                + "(which records it) and copy both files it writes", error.getMessage());
        assertTrue(error.getCause() instanceof InvalidModelException);
    }

    @Test
    public void malformedDigestIsNamed() {
        String upper = modelSha256.toUpperCase(java.util.Locale.ROOT);
        assertEquals("net.json: model_sha256 must be 64 lowercase hex digits (the SHA-256 of the "
                + ".tflite file), got the string \"" + upper + "\"",
                checkFails("net.tflite", model, "net.json",
                        metadataJson(28, TEN_LABELS, "\"" + upper + "\"")).getMessage());
        assertEquals("net.json: model_sha256 must be a string, got 5",
                checkFails("net.tflite", model, "net.json",
                        metadataJson(28, TEN_LABELS, "5")).getMessage());
    }

    @Test
    public void wrongStdInPickedMetadataIsNamed() {
        byte[] zeroStd = new String(metadataJson(28, TEN_LABELS), UTF_8)
                .replace("\"std\": [0.25]", "\"std\": [0]").getBytes(UTF_8);
        assertEquals("net.json: preprocessing.std[0] must be > 0, got 0.0",
                checkFails("net.tflite", model, "net.json", zeroStd).getMessage());
        byte[] nanStd = new String(metadataJson(28, TEN_LABELS), UTF_8)
                .replace("\"std\": [0.25]", "\"std\": [NaN]").getBytes(UTF_8);
        String message = checkFails("net.tflite", model, "net.json", nanStd).getMessage();
        assertTrue(message, message.startsWith("net.json: model metadata is not valid JSON: "));
        assertTrue(message, message.contains("(in preprocessing.std[0]): NaN is not JSON"));
    }

    @Test
    public void metadataIsReadAsUtf8() throws Exception {
        String labels = TEN_LABELS.replace("Pullover", "Pullöver").replace("Bag", "Tasche \u2713");
        LoadedModel loaded = ModelReader.check("net.tflite", model, "net.json",
                metadataJson(28, labels));
        assertEquals("Pullöver", loaded.metadata().labels().get(2));
        assertEquals("Tasche \u2713", loaded.metadata().labels().get(8));
    }

    // --- the bundled assets ------------------------------------------------------------------

    @Test
    public void bundleReadsBothStreamsAndClosesThem() throws Exception {
        TrackedStream modelStream = new TrackedStream(model);
        TrackedStream metadataStream = new TrackedStream(metadata);
        LoadedModel loaded = ModelReader.fromBundle(opening(modelStream),
                opening(metadataStream));
        assertEquals("assets/model.tflite", loaded.fileName());
        assertEquals("assets/model.json", loaded.metadataFileName());
        assertEquals(model.length, loaded.tflite().sizeBytes());
        assertTrue(modelStream.closed);
        assertTrue(metadataStream.closed);
    }

    @Test
    public void missingBundledMetadataIsAMessage() {
        TrackedStream modelStream = new TrackedStream(model);
        FileNotFoundException missing = new FileNotFoundException("model.json");
        try {
            ModelReader.fromBundle(opening(modelStream), failing(missing));
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertEquals("cannot read the bundled model (assets/model.tflite, "
                    + "assets/model.json): model.json", expected.getMessage());
            assertSame(missing, expected.getCause());
        }
        assertTrue(modelStream.closed);
    }

    @Test
    public void invalidBundledModelNamesTheAsset() {
        try {
            ModelReader.fromBundle(opening(new TrackedStream(metadata)),
                    opening(new TrackedStream(metadata)));
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertTrue(expected.getMessage(), expected.getMessage().startsWith(
                    "assets/model.tflite: not a TFLite model: "));
        }
    }

    // --- picked documents ---------------------------------------------------------------------

    private static String readDocumentFails(ModelReader.StreamOpener opener, String name,
            int limit) {
        try {
            ModelReader.readDocument(opener, name, limit);
        } catch (ModelLoadException expected) {
            return expected.getMessage();
        }
        throw new AssertionError("expected ModelLoadException");
    }

    @Test
    public void documentIsReadWholeAndClosed() throws Exception {
        TrackedStream stream = new TrackedStream(model);
        assertArrayEquals(model, ModelReader.readDocument(opening(stream), "net.tflite",
                model.length));
        assertTrue(stream.closed);
    }

    @Test
    public void missingDocumentCannotBeOpened() {
        assertEquals("cannot open net.json: open failed: ENOENT (No such file or directory)",
                readDocumentFails(failing(new FileNotFoundException(
                        "open failed: ENOENT (No such file or directory)")), "net.json", 100));
    }

    @Test
    public void providerReturningNothingIsAMessage() {
        assertEquals("cannot open net.json: the provider returned nothing",
                readDocumentFails(opening(null), "net.json", 100));
    }

    @Test
    public void readFailureIsAMessageAndTheStreamClosed() {
        TrackedStream stream = new TrackedStream(model, 1000);
        assertEquals("cannot read net.tflite: connection reset",
                readDocumentFails(opening(stream), "net.tflite", model.length));
        assertTrue(stream.closed);
    }

    @Test
    public void refusedPermissionIsAMessage() {
        ModelReader.StreamOpener denied = new ModelReader.StreamOpener() {
            @Override
            public InputStream open() {
                throw new SecurityException("Permission Denial: opening provider");
            }
        };
        assertEquals("no permission to read net.tflite: Permission Denial: opening provider",
                readDocumentFails(denied, "net.tflite", 100));
    }

    @Test
    public void documentOverTheLimitIsTheWrongFile() throws Exception {
        int limit = 1024 * 1024;
        TrackedStream stream = new TrackedStream(new byte[limit + 1]);
        assertEquals("cannot read movie.mp4: larger than 1 MB; is it the right file?",
                readDocumentFails(opening(stream), "movie.mp4", limit));
        assertTrue(stream.closed);
        assertEquals(limit, ModelReader.readDocument(opening(new TrackedStream(new byte[limit])),
                "exact.bin", limit).length);
    }
}
