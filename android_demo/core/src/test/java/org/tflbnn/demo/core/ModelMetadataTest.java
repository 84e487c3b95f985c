package org.tflbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.util.Arrays;
import java.util.Map;
import org.junit.Test;

public class ModelMetadataTest {
    /** A valid document; the tests replace one piece at a time. */
    private static final String LABELS = "\"labels\": [\"cat\", \"dog\", \"bird\"]";
    private static final String PREPROCESSING = "\"height\": 32, \"width\": 24, \"channels\": 3, "
            + "\"mean\": [0.5, 0.25, 0.125], \"std\": [0.5, 0.5, 0.25], \"center_crop\": 0.875, "
            + "\"resize\": \"bilinear\", \"layout\": \"NHWC\", \"dtype\": \"float32\"";

    private static String document(String head, String labels, String preprocessing) {
        return "{" + head + ", \"name\": \"tiny\", " + labels + ", \"preprocessing\": {"
                + preprocessing + "}, \"extra\": {\"nested\": [1, {\"x\": null}]}}";
    }

    private static String withPreprocessing(String preprocessing) {
        return document("\"format\": \"tflbnn-model-metadata\", \"version\": 1", LABELS,
                preprocessing);
    }

    @Test
    public void readsTheDemoModelsMetadata() throws IOException, MetadataException {
        // A copy of runs/demo/model.json as `tflbnn demo` wrote it.
        ModelMetadata metadata = ModelMetadata.parse(TestResources.text("demo_model.json"));
        assertEquals("reactnet_a", metadata.name());
        assertEquals(Arrays.asList("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"), metadata.labels());
        Preprocessing p = metadata.preprocessing();
        assertEquals(28, p.height());
        assertEquals(28, p.width());
        assertEquals(1, p.channels());
        assertArrayEquals(new double[] {0.28604059698879547}, p.mean(), 0);
        assertArrayEquals(new double[] {0.3530242445149226}, p.std(), 0);
        assertEquals(1.0, p.centerCrop(), 0);
        assertArrayEquals(new int[] {28, 28, 1}, p.inputShape());
        assertEquals(784, p.inputLength());
        assertEquals("two_step", metadata.extra().get("recipe"));
    }

    @Test
    public void readsEveryPreprocessingField() throws MetadataException {
        ModelMetadata metadata = ModelMetadata.parse(withPreprocessing(PREPROCESSING));
        assertEquals("tiny", metadata.name());
        assertEquals(Arrays.asList("cat", "dog", "bird"), metadata.labels());
        Preprocessing p = metadata.preprocessing();
        assertArrayEquals(new int[] {32, 24, 3}, p.inputShape());
        assertEquals(32 * 24 * 3, p.inputLength());
        assertArrayEquals(new double[] {0.5, 0.25, 0.125}, p.mean(), 0);
        assertArrayEquals(new double[] {0.5, 0.5, 0.25}, p.std(), 0);
        assertEquals(0.875, p.centerCrop(), 0);
        assertTrue(metadata.extra().get("nested") instanceof java.util.List);
    }

    @Test
    public void optionalFieldsTakeTheirDefaults() throws MetadataException {
        ModelMetadata metadata = ModelMetadata.parse("{\"format\": \"tflbnn-model-metadata\", "
                + "\"version\": 1, \"labels\": [\"a\"], \"preprocessing\": {\"height\": 2, "
                + "\"width\": 3, \"channels\": 1, \"mean\": [0], \"std\": [1]}}");
        assertEquals("", metadata.name());
        assertEquals(1.0, metadata.preprocessing().centerCrop(), 0);
        assertTrue(metadata.extra().isEmpty());
    }

    @Test
    public void returnedArraysAndListsCannotChangeTheMetadata() throws MetadataException {
        ModelMetadata metadata = ModelMetadata.parse(withPreprocessing(PREPROCESSING));
        metadata.preprocessing().mean()[0] = 99;
        metadata.preprocessing().std()[0] = 99;
        assertEquals(0.5, metadata.preprocessing().mean()[0], 0);
        assertEquals(0.5, metadata.preprocessing().std()[0], 0);
        try {
            metadata.labels().set(0, "changed");
            fail("labels are modifiable");
        } catch (UnsupportedOperationException expected) {
            assertEquals("cat", metadata.labels().get(0));
        }
    }

    @Test
    public void wrongOrMissingFormatIsNamed() {
        assertError(document("\"format\": \"other\", \"version\": 1", LABELS, PREPROCESSING),
                "format must be \"tflbnn-model-metadata\"");
        assertError(document("\"version\": 1", LABELS, PREPROCESSING),
                "format is missing: not a tflbnn model metadata file");
    }

    @Test
    public void newerVersionSaysANewerTflbnnWroteIt() {
        assertError(document("\"format\": \"tflbnn-model-metadata\", \"version\": 2", LABELS,
                PREPROCESSING),
                "version must be 1, got 2: this model.json was written by a newer tflbnn");
    }

    @Test
    public void invalidVersionIsNamed() {
        assertError(document("\"format\": \"tflbnn-model-metadata\"", LABELS, PREPROCESSING),
                "version is missing");
        assertError(document("\"format\": \"tflbnn-model-metadata\", \"version\": \"1\"",
                LABELS, PREPROCESSING), "version must be an integer, got the string \"1\"");
        assertError(document("\"format\": \"tflbnn-model-metadata\", \"version\": 0", LABELS,
                PREPROCESSING), "version must be 1, got 0");
    }

    @Test
    public void invalidLabelsAreNamed() {
        String head = "\"format\": \"tflbnn-model-metadata\", \"version\": 1";
        assertError(document(head, "\"other\": 1", PREPROCESSING), "labels is missing");
        assertError(document(head, "\"labels\": []", PREPROCESSING), "labels must not be empty");
        assertError(document(head, "\"labels\": \"cat\"", PREPROCESSING),
                "labels must be an array, got the string \"cat\"");
        assertError(document(head, "\"labels\": [\"cat\", 7]", PREPROCESSING),
                "labels[1] must be a string, got 7");
    }

    @Test
    public void emptyAndRepeatedLabelsAreNamed() throws MetadataException {
        String head = "\"format\": \"tflbnn-model-metadata\", \"version\": 1";
        assertError(document(head, "\"labels\": [\"cat\", \"\"]", PREPROCESSING),
                "labels[1] must not be empty");
        // The later copy is named, with the index of the first.
        assertError(document(head, "\"labels\": [\"cat\", \"dog\", \"cat\"]", PREPROCESSING),
                "labels[2] \"cat\" is a duplicate of labels[0]: class names must be unique");
        // Names differing only in case are different names (Python compares them the same way).
        assertEquals(Arrays.asList("cat", "Cat"), ModelMetadata.parse(document(head,
                "\"labels\": [\"cat\", \"Cat\"]", PREPROCESSING)).labels());
    }

    @Test
    public void integersWrittenAsFloatsOrBooleansAreRefused() {
        String head = "\"format\": \"tflbnn-model-metadata\", \"version\": ";
        // Python's json reads 1.0 as a float, which its schema refuses; the app does the same.
        assertError(document(head + "1.0", LABELS, PREPROCESSING),
                "version must be an integer, got 1.0");
        assertError(document(head + "true", LABELS, PREPROCESSING),
                "version must be an integer, got the boolean true");
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32",
                "\"height\": 32.0")), "preprocessing.height must be an integer, got 32.0");
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24",
                "\"width\": 2.4e1")), "preprocessing.width must be an integer, got 24.0");
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32",
                "\"height\": false")), "preprocessing.height must be an integer, got the boolean");
        assertError(withPreprocessing(PREPROCESSING.replace("\"channels\": 3",
                "\"channels\": 3.0")), "preprocessing.channels must be an integer, got 3.0");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]",
                "[0.5, true, 0.25]")), "preprocessing.std[1] must be a finite number, got the "
                + "boolean true");
    }

    @Test
    public void sidesUpTo8192AreAccepted() throws MetadataException {
        Preprocessing p = ModelMetadata.parse(withPreprocessing(PREPROCESSING
                .replace("\"height\": 32", "\"height\": 8192")
                .replace("\"width\": 24", "\"width\": 1"))).preprocessing();
        assertArrayEquals(new int[] {8192, 1, 3}, p.inputShape());
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24", "\"width\": 8193")),
                "preprocessing.width must be an integer in 1..8192, got 8193");
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24",
                "\"width\": 99999999999999999999")), "preprocessing.width must be an integer");
    }

    @Test
    public void nanOrInfinityAnywhereIsRefusedNamingTheField() {
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]",
                "[NaN, 0.5, 0.25]")), "model metadata is not valid JSON: invalid JSON at offset");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]",
                "[NaN, 0.5, 0.25]")), "(in preprocessing.std[0]): NaN is not JSON; a value here "
                + "must be a finite number");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.25, 0.125]",
                "[0.5, -Infinity, 0.125]")), "(in preprocessing.mean[1]): Infinity is not JSON");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "Infinity")),
                "(in preprocessing.center_crop): Infinity is not JSON");
        assertError(withPreprocessing(PREPROCESSING).replace("{\"x\": null}", "{\"x\": NaN}"),
                "(in extra.nested[1].x): NaN is not JSON");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "1e999")),
                "(in preprocessing.center_crop): number 1e999 is out of the range of a double "
                + "(not a finite number)");
    }

    @Test
    public void floatTwinMustBeABareFileName() throws MetadataException {
        String valid = withPreprocessing(PREPROCESSING);
        String twin = "\"extra\": {\"conversion\": {\"float_twin\": %s}}";
        String base = valid.replace("\"extra\": {\"nested\": [1, {\"x\": null}]}", "%s");
        ModelMetadata metadata = ModelMetadata.parse(String.format(base,
                String.format(twin, "\"model.float.tflite\"")));
        assertEquals("model.float.tflite",
                ((Map<?, ?>) metadata.extra().get("conversion")).get("float_twin"));
        for (String bad : new String[] {"\"../x.tflite\"", "\"/etc/passwd\"", "\"a/b.tflite\"",
                "\"a\\\\b.tflite\"", "\"..\"", "\".\"", "\"\""}) {
            assertError(String.format(base, String.format(twin, bad)),
                    "extra.conversion.float_twin must be a bare file name in the model's folder");
        }
        assertError(String.format(base, String.format(twin, "7")),
                "extra.conversion.float_twin must be a string, got 7");
        // No float twin: absent or null.
        ModelMetadata.parse(String.format(base, String.format(twin, "null")));
        ModelMetadata.parse(String.format(base, "\"extra\": {\"conversion\": {}}"));
        assertError(String.format(base, "\"extra\": {\"conversion\": \"lce\"}"),
                "extra.conversion must be an object, got the string \"lce\"");
    }

    @Test
    public void floatTwinDigestMustBeASha256() throws MetadataException {
        String valid = withPreprocessing(PREPROCESSING);
        String base = valid.replace("\"extra\": {\"nested\": [1, {\"x\": null}]}",
                "\"extra\": {\"conversion\": {\"float_twin_sha256\": %s}}");
        ModelMetadata.parse(String.format(base,
                "\"043db5f26ee84aa577d0dd024fd9e5b262ea13b56d7a1faa219ca71a60e7869a\""));
        ModelMetadata.parse(String.format(base, "null"));
        assertError(String.format(base, "\"abc123\""), "extra.conversion.float_twin_sha256 must "
                + "be 64 lowercase hex digits (the SHA-256 of the float twin), got the string "
                + "\"abc123\"");
        assertError(String.format(base, "1"),
                "extra.conversion.float_twin_sha256 must be a string, got 1");
    }

    @Test
    public void modelSha256IsReadAndItsFormChecked() throws MetadataException {
        String digest = "3859689938ed6652973d654a2d7ec0519349942dd7fb257f6f7f64af0bc3aa8c";
        String valid = withPreprocessing(PREPROCESSING);
        String with = valid.substring(0, valid.length() - 1) + ", \"model_sha256\": %s}";
        assertEquals(digest, ModelMetadata.parse(String.format(with, "\"" + digest + "\""))
                .modelSha256());
        // Optional in the schema (a .keras sidecar has none); ModelDigest.verify requires it.
        assertEquals(null, ModelMetadata.parse(valid).modelSha256());
        String[] bad = {digest.toUpperCase(java.util.Locale.ROOT), digest.substring(1),
            digest + "0", digest.replace('c', 'g'), "", "sha256:" + digest.substring(7)};
        for (String value : bad) {
            assertError(String.format(with, "\"" + value + "\""), "model_sha256 must be 64 "
                    + "lowercase hex digits (the SHA-256 of the .tflite file), got the string \""
                    + value + "\"");
        }
        assertError(String.format(with, "123"), "model_sha256 must be a string, got 123");
        assertError(String.format(with, "null"), "model_sha256 must be a string, got null");
    }

    @Test
    public void missingPreprocessingFieldsAreNamed() {
        assertError("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, " + LABELS + "}",
                "preprocessing is missing");
        for (String field : new String[] {"height", "width", "channels", "mean", "std"}) {
            String without = PREPROCESSING.replace("\"" + field + "\"", "\"renamed\"");
            assertError(withPreprocessing(without), "preprocessing." + field + " is missing");
        }
    }

    @Test
    public void invalidSizesAreNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32", "\"height\": 0")),
                "preprocessing.height must be an integer in 1..8192, got 0");
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24", "\"width\": -3")),
                "preprocessing.width must be an integer in 1..8192, got -3");
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32", "\"height\": 2.5")),
                "preprocessing.height must be an integer, got 2.5");
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24", "\"width\": \"24\"")),
                "preprocessing.width must be an integer, got the string \"24\"");
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32",
                "\"height\": 100000").replace("\"width\": 24", "\"width\": 100000")),
                "preprocessing.height must be an integer in 1..8192, got 100000");
    }

    @Test
    public void wrongChannelCountsAreNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("\"channels\": 3", "\"channels\": 2")),
                "preprocessing.channels must be 1 or 3, got 2");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.25, 0.125]", "[0.5]")),
                "preprocessing.mean needs 3 values (one per channel), got 1");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]", "[0.5, 0.5]")),
                "preprocessing.std needs 3 values (one per channel), got 2");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.25, 0.125]", "0.5")),
                "preprocessing.mean must be an array, got 0.5");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.25, 0.125]",
                "[0.5, null, 0.125]")), "preprocessing.mean[1] must be a finite number, got null");
    }

    @Test
    public void nonPositiveStdIsNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]", "[0.5, 0, 0.25]")),
                "preprocessing.std[1] must be > 0, got 0.0");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]",
                "[0.5, 0.5, -0.25]")), "preprocessing.std[2] must be > 0, got -0.25");
    }

    @Test
    public void centerCropOutOfRangeIsNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "0")),
                "preprocessing.center_crop must be in (0, 1], got 0.0");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "1.5")),
                "preprocessing.center_crop must be in (0, 1], got 1.5");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "-0.5")),
                "preprocessing.center_crop must be in (0, 1], got -0.5");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "null")),
                "preprocessing.center_crop must be a finite number, got null");
    }

    @Test
    public void unsupportedResizeLayoutOrDtypeIsNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("\"bilinear\"", "\"nearest\"")),
                "preprocessing.resize must be \"bilinear\"");
        assertError(withPreprocessing(PREPROCESSING.replace("\"NHWC\"", "\"NCHW\"")),
                "preprocessing.layout must be \"NHWC\"");
        assertError(withPreprocessing(PREPROCESSING.replace("\"float32\"", "\"uint8\"")),
                "preprocessing.dtype must be \"float32\"");
        assertError(withPreprocessing(PREPROCESSING.replace("\"bilinear\"", "1")),
                "preprocessing.resize must be a string");
    }

    @Test
    public void otherShapesOfTheDocumentAreNamed() {
        assertError("[1, 2]", "model metadata must be an object, got an array");
        assertError("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, " + LABELS
                + ", \"preprocessing\": [1]}", "preprocessing must be an object, got an array");
        assertError(withPreprocessing(PREPROCESSING).replace("\"name\": \"tiny\"", "\"name\": 5"),
                "name must be a string, got 5");
        assertError("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, " + LABELS
                + ", \"preprocessing\": {" + PREPROCESSING + "}, \"extra\": [1]}",
                "extra must be an object, got an array");
    }

    @Test
    public void invalidJsonNamesTheOffset() {
        assertError("{\"format\": \"tflbnn-model-metadata\",}",
                "model metadata is not valid JSON: invalid JSON at offset 35");
    }

    @Test
    public void fromMapValidatesLikeParse() throws JsonException {
        @SuppressWarnings("unchecked")
        Map<String, Object> fields = (Map<String, Object>) Json.parse("{" + PREPROCESSING + "}");
        fields.put("channels", 1L);
        try {
            Preprocessing.fromMap(fields);
            fail("accepted 3 means for 1 channel");
        } catch (MetadataException error) {
            assertEquals("preprocessing.mean needs 1 values (one per channel), got 3",
                    error.getMessage());
        }
    }

    @Test
    public void constructorRejectsInvalidValues() {
        double[] one = {0.5};
        assertConstructorRejects(0, 1, 1, one, one, 1, "height and width must be in 1..8192");
        assertConstructorRejects(1, 0, 1, one, one, 1, "height and width must be in 1..8192");
        assertConstructorRejects(8193, 1, 1, one, one, 1, "height and width must be in 1..8192");
        assertConstructorRejects(1, 1, 2, one, one, 1, "channels must be 1 or 3");
        assertConstructorRejects(1, 1, 3, one, one, 1, "mean and std need 3 values");
        assertConstructorRejects(1, 1, 1, one, new double[] {0}, 1, "std must be positive");
        assertConstructorRejects(1, 1, 1, one, new double[] {Double.NaN}, 1,
                "std must be positive");
        assertConstructorRejects(1, 1, 1, new double[] {Double.NaN}, one, 1,
                "mean must be finite");
        assertConstructorRejects(1, 1, 1, one, one, 0, "center_crop must be in (0, 1]");
        assertConstructorRejects(1, 1, 1, one, one, 1.0001, "center_crop must be in (0, 1]");
        assertConstructorRejects(1, 1, 1, one, one, Double.NaN, "center_crop must be in (0, 1]");
    }

    @Test
    public void metadataConstructorRejectsWhatParseRefuses() {
        Preprocessing p = new Preprocessing(1, 1, 1, new double[] {0}, new double[] {1}, 1);
        Map<String, Object> none = java.util.Collections.<String, Object>emptyMap();
        String[][] cases = {
            {"a", "", "labels[1] must not be empty"},
            {"a", "a", "labels[1] \"a\" is a duplicate of labels[0]"},
        };
        for (String[] c : cases) {
            try {
                new ModelMetadata("m", Arrays.asList(c[0], c[1]), p, none, null);
                fail("accepted labels " + c[0] + ", " + c[1]);
            } catch (IllegalArgumentException error) {
                assertTrue(error.getMessage(), error.getMessage().contains(c[2]));
            }
        }
        try {
            new ModelMetadata("m", Arrays.asList("a"), p, none, "ABC");
            fail("accepted a malformed model_sha256");
        } catch (IllegalArgumentException error) {
            assertEquals("model_sha256 must be 64 lowercase hex digits, got \"ABC\"",
                    error.getMessage());
        }
    }

    @Test
    public void constructorCopiesItsArrays() {
        double[] mean = {0.5};
        Preprocessing p = new Preprocessing(1, 1, 1, mean, new double[] {1}, 1);
        mean[0] = 7;
        assertEquals(0.5, p.mean()[0], 0);
    }

    private static void assertConstructorRejects(int height, int width, int channels,
                                                 double[] mean, double[] std, double crop,
                                                 String message) {
        try {
            new Preprocessing(height, width, channels, mean, std, crop);
            fail("accepted " + message);
        } catch (IllegalArgumentException error) {
            assertTrue(error.getMessage(), error.getMessage().contains(message));
        }
    }

    private static void assertError(String json, String message) {
        try {
            ModelMetadata.parse(json);
            fail("accepted invalid metadata (" + message + "): " + json);
        } catch (MetadataException error) {
            assertTrue("'" + error.getMessage() + "' should contain '" + message + "'",
                    error.getMessage().contains(message));
        }
    }
}
