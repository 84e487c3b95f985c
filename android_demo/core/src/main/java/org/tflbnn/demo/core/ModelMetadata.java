package org.tflbnn.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What travels with a model in {@code model.json}: its name, class labels and preprocessing
 * (format {@code tflbnn-model-metadata}, written by Python's {@code tflbnn.metadata}).
 */
public final class ModelMetadata {
    /** The value of the "format" field of every metadata file. */
    public static final String FORMAT = "tflbnn-model-metadata";
    /** The newest format version this code reads. */
    public static final int VERSION = 1;

    private final String name;
    private final List<String> labels;
    private final Preprocessing preprocessing;
    private final Map<String, Object> extra;

    /**
     * @param name a short model name, may be empty
     * @param labels class names, index = output unit; non-empty (copied)
     * @param preprocessing the input rule
     * @param extra free-form facts from the "extra" field (copied, shallowly); may be empty
     * @throws IllegalArgumentException if labels is empty
     * @throws NullPointerException if any argument or label is null
     */
    public ModelMetadata(String name, List<String> labels, Preprocessing preprocessing,
                         Map<String, Object> extra) {
        if (name == null || preprocessing == null || extra == null) {
            throw new NullPointerException("name, preprocessing and extra must not be null");
        }
        if (labels.isEmpty()) {
            throw new IllegalArgumentException("labels must not be empty");
        }
        for (String label : labels) {
            if (label == null) {
                throw new NullPointerException("labels must not contain null");
            }
        }
        this.name = name;
        this.labels = Collections.unmodifiableList(new ArrayList<String>(labels));
        this.preprocessing = preprocessing;
        this.extra = Collections.unmodifiableMap(new LinkedHashMap<String, Object>(extra));
    }

    /**
     * Parses and validates a {@code model.json} text.
     *
     * @param jsonText the file's content
     * @return the metadata
     * @throws MetadataException if the text is not JSON, not tflbnn metadata ("format"), written
     *     by a newer tflbnn ("version"), or a field is missing or invalid; the message names the
     *     field (and for invalid JSON, the character offset)
     */
    public static ModelMetadata parse(String jsonText) throws MetadataException {
        Object root;
        try {
            root = Json.parse(jsonText);
        } catch (JsonException error) {
            throw new MetadataException("model metadata is not valid JSON: " + error.getMessage());
        }
        Map<String, Object> fields = MetadataFields.asObject(root, "model metadata");
        checkFormat(fields);
        checkVersion(fields);
        String name = "";
        if (fields.containsKey("name")) {
            name = MetadataFields.asString(fields.get("name"), "name");
        }
        List<String> labels = readLabels(fields);
        Preprocessing preprocessing = Preprocessing.fromMap(MetadataFields.asObject(
                MetadataFields.require(fields, "preprocessing", "preprocessing"),
                "preprocessing"));
        Map<String, Object> extra = new LinkedHashMap<String, Object>();
        if (fields.containsKey("extra")) {
            extra = MetadataFields.asObject(fields.get("extra"), "extra");
        }
        return new ModelMetadata(name, labels, preprocessing, extra);
    }

    private static void checkFormat(Map<String, Object> fields) throws MetadataException {
        Object format = fields.get("format");
        if (!FORMAT.equals(format)) {
            throw new MetadataException("format must be \"" + FORMAT + "\" (not a tflbnn model "
                    + "metadata file), got " + (fields.containsKey("format")
                    ? MetadataFields.describe(format) : "no format field"));
        }
    }

    private static void checkVersion(Map<String, Object> fields) throws MetadataException {
        double version = MetadataFields.asNumber(
                MetadataFields.require(fields, "version", "version"), "version");
        if (version > VERSION) {
            throw new MetadataException("version " + MetadataFields.formatNumber(version)
                    + ": this model.json was written by a newer tflbnn; this app reads version "
                    + VERSION + " (update the app or re-export the model)");
        }
        if (version != VERSION) {
            throw new MetadataException("version must be " + VERSION + ", got "
                    + MetadataFields.formatNumber(version));
        }
    }

    private static List<String> readLabels(Map<String, Object> fields) throws MetadataException {
        List<Object> values = MetadataFields.asArray(
                MetadataFields.require(fields, "labels", "labels"), "labels");
        if (values.isEmpty()) {
            throw new MetadataException("labels must not be empty");
        }
        List<String> labels = new ArrayList<String>(values.size());
        for (int i = 0; i < values.size(); i++) {
            labels.add(MetadataFields.asString(values.get(i), "labels[" + i + "]"));
        }
        return labels;
    }

    /** @return the model's short name, possibly empty */
    public String name() {
        return name;
    }

    /** @return the class names, index = output unit (unmodifiable) */
    public List<String> labels() {
        return labels;
    }

    /** @return the input preprocessing rule */
    public Preprocessing preprocessing() {
        return preprocessing;
    }

    /** @return the free-form "extra" facts as parsed JSON values (unmodifiable, may be empty) */
    public Map<String, Object> extra() {
        return extra;
    }
}
