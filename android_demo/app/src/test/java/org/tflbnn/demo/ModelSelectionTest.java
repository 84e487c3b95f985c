package org.tflbnn.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import android.net.Uri;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.Test;

/**
 * Sorting the picked documents into model and metadata by their names. android.jar's Uris are
 * stubs that cannot be created on the JVM, so the documents are null Uris and only the names
 * show where each went.
 */
public class ModelSelectionTest {

    private static List<Uri> uris(int count) {
        List<Uri> uris = new ArrayList<Uri>();
        for (int i = 0; i < count; i++) {
            uris.add(null);
        }
        return uris;
    }

    private static ModelSelection pick(String... names) throws ModelLoadException {
        return ModelSelection.fromPick(uris(names.length), Arrays.asList(names));
    }

    private static String pickFails(String... names) {
        try {
            pick(names);
        } catch (ModelLoadException expected) {
            return expected.getMessage();
        }
        throw new AssertionError("expected ModelLoadException for " + Arrays.toString(names));
    }

    @Test
    public void modelAndMetadataInEitherOrder() throws Exception {
        ModelSelection first = pick("net.tflite", "net.json");
        assertTrue(first.isComplete());
        assertEquals("net.tflite", first.modelName());
        assertEquals("net.json", first.metadataName());

        ModelSelection second = pick("labels.JSON", "weights.bin");
        assertTrue(second.isComplete());
        assertEquals("weights.bin", second.modelName());
        assertEquals("labels.JSON", second.metadataName());
    }

    @Test
    public void modelAloneAsksForTheMetadataNext() throws Exception {
        ModelSelection modelOnly = pick("net.tflite");
        assertFalse(modelOnly.isComplete());
        assertEquals("net.tflite", modelOnly.modelName());
        assertNull(modelOnly.metadataName());

        ModelSelection complete = modelOnly.withMetadata(null, "net.Json");
        assertTrue(complete.isComplete());
        assertEquals("net.tflite", complete.modelName());
        assertEquals("net.Json", complete.metadataName());
        assertFalse("withMetadata returns a new selection", modelOnly.isComplete());
    }

    @Test
    public void metadataAloneIsRefused() {
        assertEquals("only model.json was selected: select the .tflite model too (both at once, "
                + "or the .tflite first)", pickFails("model.json"));
    }

    @Test
    public void secondPickThatIsNoJsonIsRefused() throws Exception {
        try {
            pick("net.tflite").withMetadata(null, "net2.tflite");
            fail("expected ModelLoadException");
        } catch (ModelLoadException expected) {
            assertEquals("net2.tflite is not a .json metadata file (the metadata of net.tflite "
                    + "is the .json file written next to it)", expected.getMessage());
        }
    }

    @Test
    public void twoModelsOrTwoMetadataFilesAreRefused() {
        assertEquals("selected a.tflite and b.tflite: exactly one of them must be the .json "
                + "metadata", pickFails("a.tflite", "b.tflite"));
        assertEquals("selected a.json and b.json: exactly one of them must be the .json "
                + "metadata", pickFails("a.json", "b.json"));
    }

    @Test
    public void otherCountsAreRefused() {
        assertEquals("3 files were selected: select one .tflite model and its .json metadata",
                pickFails("a.tflite", "a.json", "b.json"));
        assertEquals("0 files were selected: select one .tflite model and its .json metadata",
                pickFails());
    }

    @Test
    public void jsonIsTheSuffixNotAnywhereInTheName() throws Exception {
        ModelSelection selection = pick("model.json.tflite");
        assertFalse(selection.isComplete());
        assertEquals("model.json.tflite", selection.modelName());
        assertEquals("selected json.tflite and model.json.txt: exactly one of them must be the "
                + ".json metadata", pickFails("json.tflite", "model.json.txt"));
    }
}
