package org.tflbnn.demo;

import android.net.Uri;

import java.util.List;
import java.util.Locale;

/**
 * Which picked document is the .tflite model and which its .json metadata.
 *
 * <p>The user selects both files at once, or the model alone and then the metadata in a second
 * picker. Documents are told apart by their display names: the metadata's ends in ".json".
 */
final class ModelSelection {
    private final Uri modelUri;
    private final String modelName;
    private final Uri metadataUri;
    private final String metadataName;

    private ModelSelection(Uri modelUri, String modelName, Uri metadataUri, String metadataName) {
        this.modelUri = modelUri;
        this.modelName = modelName;
        this.metadataUri = metadataUri;
        this.metadataName = metadataName;
    }

    /**
     * Sorts the documents of one pick.
     *
     * @param uris the picked documents (1 or 2)
     * @param names their display names, same order
     * @return both documents, or only the model when one non-.json document was picked
     *     ({@link #isComplete()} is false: ask for the metadata next)
     * @throws ModelLoadException if the pick cannot be a model and its metadata
     */
    static ModelSelection fromPick(List<Uri> uris, List<String> names) throws ModelLoadException {
        if (uris.size() == 1) {
            if (isJson(names.get(0))) {
                throw new ModelLoadException("only " + names.get(0) + " was selected: select the "
                        + ".tflite model too (both at once, or the .tflite first)");
            }
            return new ModelSelection(uris.get(0), names.get(0), null, null);
        }
        if (uris.size() != 2) {
            throw new ModelLoadException(uris.size() + " files were selected: select one .tflite "
                    + "model and its .json metadata");
        }
        boolean firstIsJson = isJson(names.get(0));
        boolean secondIsJson = isJson(names.get(1));
        if (firstIsJson == secondIsJson) {
            throw new ModelLoadException("selected " + names.get(0) + " and " + names.get(1)
                    + ": exactly one of them must be the .json metadata");
        }
        int model = firstIsJson ? 1 : 0;
        return new ModelSelection(uris.get(model), names.get(model), uris.get(1 - model),
                names.get(1 - model));
    }

    /**
     * Adds the metadata picked after a model-only pick.
     *
     * @param uri the metadata document
     * @param name its display name
     * @return the complete selection
     * @throws ModelLoadException if the document is not named *.json
     */
    ModelSelection withMetadata(Uri uri, String name) throws ModelLoadException {
        if (!isJson(name)) {
            throw new ModelLoadException(name + " is not a .json metadata file (the metadata of "
                    + modelName + " is the .json file written next to it)");
        }
        return new ModelSelection(modelUri, modelName, uri, name);
    }

    /** @return whether both model and metadata are known */
    boolean isComplete() {
        // The name, not the Uri: both are set together and names are never null (isJson reads
        // each one), and the JVM tests cannot create Uris (android.jar's are stubs).
        return metadataName != null;
    }

    /** @return the model document */
    Uri modelUri() {
        return modelUri;
    }

    /** @return the model's display name */
    String modelName() {
        return modelName;
    }

    /** @return the metadata document, or null before it was picked */
    Uri metadataUri() {
        return metadataUri;
    }

    /** @return the metadata's display name, or null before it was picked */
    String metadataName() {
        return metadataName;
    }

    private static boolean isJson(String name) {
        return name.toLowerCase(Locale.ROOT).endsWith(".json");
    }
}
