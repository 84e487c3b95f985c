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
        assertError(document("\"version\": 1", LABELS, PREPROCESSING), "no format field");
    }

    @Test
    public void newerVersionSaysANewerTflbnnWroteIt() {
        assertError(document("\"format\": \"tflbnn-model-metadata\", \"version\": 2", LABELS,
                PREPROCESSING), "version 2: this model.json was written by a newer tflbnn");
    }

    @Test
    public void invalidVersionIsNamed() {
        assertError(document("\"format\": \"tflbnn-model-metadata\"", LABELS, PREPROCESSING),
                "version is missing");
        assertError(document("\"format\": \"tflbnn-model-metadata\", \"version\": \"1\"",
                LABELS, PREPROCESSING), "version must be a number");
        assertError(document("\"format\": \"tflbnn-model-metadata\", \"version\": 0", LABELS,
                PREPROCESSING), "version must be 1, got 0");
    }

    @Test
    public void invalidLabelsAreNamed() {
        String head = "\"format\": \"tflbnn-model-metadata\", \"version\": 1";
        assertError(document(head, "\"other\": 1", PREPROCESSING), "labels is missing");
        assertError(document(head, "\"labels\": []", PREPROCESSING), "labels must not be empty");
        assertError(document(head, "\"labels\": \"cat\"", PREPROCESSING),
                "labels must be a JSON array");
        assertError(document(head, "\"labels\": [\"cat\", 7]", PREPROCESSING),
                "labels[1] must be a string, got 7");
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
                "preprocessing.height must be a positive integer, got 0");
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24", "\"width\": -3")),
                "preprocessing.width must be a positive integer, got -3");
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32", "\"height\": 2.5")),
                "preprocessing.height must be an integer, got 2.5");
        assertError(withPreprocessing(PREPROCESSING.replace("\"width\": 24", "\"width\": \"24\"")),
                "preprocessing.width must be a number");
        assertError(withPreprocessing(PREPROCESSING.replace("\"height\": 32",
                "\"height\": 100000").replace("\"width\": 24", "\"width\": 100000")),
                "preprocessing.height and width give an input of 100000x100000x3");
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
                "preprocessing.mean must be a JSON array");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.25, 0.125]",
                "[0.5, null, 0.125]")), "preprocessing.mean[1] must be a number, got null");
    }

    @Test
    public void nonPositiveStdIsNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]", "[0.5, 0, 0.25]")),
                "preprocessing.std[1] must be positive, got 0");
        assertError(withPreprocessing(PREPROCESSING.replace("[0.5, 0.5, 0.25]",
                "[0.5, 0.5, -0.25]")), "preprocessing.std[2] must be positive, got -0.25");
    }

    @Test
    public void centerCropOutOfRangeIsNamed() {
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "0")),
                "preprocessing.center_crop must be in (0, 1], got 0");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "1.5")),
                "preprocessing.center_crop must be in (0, 1], got 1.5");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "-0.5")),
                "preprocessing.center_crop must be in (0, 1], got -0.5");
        assertError(withPreprocessing(PREPROCESSING.replace("0.875", "null")),
                "preprocessing.center_crop must be a number, got null");
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
        assertError("[1, 2]", "model metadata must be a JSON object, got an array");
        assertError("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, " + LABELS
                + ", \"preprocessing\": [1]}", "preprocessing must be a JSON object");
        assertError(withPreprocessing(PREPROCESSING).replace("\"name\": \"tiny\"", "\"name\": 5"),
                "name must be a string, got 5");
        assertError("{\"format\": \"tflbnn-model-metadata\", \"version\": 1, " + LABELS
                + ", \"preprocessing\": {" + PREPROCESSING + "}, \"extra\": [1]}",
                "extra must be a JSON object");
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
        fields.put("channels", 1.0);
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
        assertConstructorRejects(0, 1, 1, one, one, 1, "height and width must be positive");
        assertConstructorRejects(1, 0, 1, one, one, 1, "height and width must be positive");
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
