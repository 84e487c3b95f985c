package org.tflbnn.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What travels with a model in {@code model.json}: its name, class labels, preprocessing and the
 * SHA-256 of the {@code .tflite} it belongs to (format {@code tflbnn-model-metadata}, written by
 * Python's {@code tflbnn.metadata}, whose schema {@link #parse} mirrors rule for rule).
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
    private final String modelSha256;

    /**
     * @param name a short model name, may be empty
     * @param labels class names, index = output unit; non-empty, each non-empty and unique
     *     (copied)
     * @param preprocessing the input rule
     * @param extra free-form facts from the "extra" field (copied, shallowly); may be empty
     * @param modelSha256 the SHA-256 of the model file as 64 lowercase hex digits, or null when
     *     the metadata records none (a .keras sidecar; {@link ModelDigest#verify} refuses it)
     * @throws IllegalArgumentException if labels is empty, has an empty or repeated name, or
     *     modelSha256 is not 64 lowercase hex digits
     * @throws NullPointerException if name, labels, a label, preprocessing or extra is null
     */
    public ModelMetadata(String name, List<String> labels, Preprocessing preprocessing,
                         Map<String, Object> extra, String modelSha256) {
        if (name == null || preprocessing == null || extra == null) {
            throw new NullPointerException("name, preprocessing and extra must not be null");
        }
        if (labels.isEmpty()) {
            throw new IllegalArgumentException("labels must not be empty");
        }
        Map<String, Integer> seen = new HashMap<String, Integer>();
        for (int i = 0; i < labels.size(); i++) {
            String label = labels.get(i);
            if (label == null) {
                throw new NullPointerException("labels must not contain null");
            }
            if (label.isEmpty()) {
                throw new IllegalArgumentException("labels[" + i + "] must not be empty");
            }
            Integer first = seen.put(label, Integer.valueOf(i));
            if (first != null) {
                throw new IllegalArgumentException("labels[" + i + "] \"" + label
                        + "\" is a duplicate of labels[" + first + "]");
            }
        }
        if (modelSha256 != null && !ModelDigest.isSha256Hex(modelSha256)) {
            throw new IllegalArgumentException("model_sha256 must be " + ModelDigest.HEX_LENGTH
                    + " lowercase hex digits, got \"" + modelSha256 + "\"");
        }
        this.name = name;
        this.labels = Collections.unmodifiableList(new ArrayList<String>(labels));
        this.preprocessing = preprocessing;
        this.extra = Collections.unmodifiableMap(new LinkedHashMap<String, Object>(extra));
        this.modelSha256 = modelSha256;
    }

    /**
     * Parses and validates a {@code model.json} text with the rules of Python's schema:
     * format and version; name a string (optional); labels an array of 1+ non-empty, unique
     * strings; preprocessing (see {@link Preprocessing#fromMap}); extra an object (optional) whose
     * {@code conversion}, if present, is an object with a bare file name as {@code float_twin}
     * and a SHA-256 as {@code float_twin_sha256} (each optional, may be null); model_sha256
     * (optional here, required by {@link ModelDigest#verify}) 64 lowercase hex digits. JSON's own
     * rules apply first ({@link Json}: no NaN or Infinity anywhere).
     *
     * @param jsonText the file's content
     * @return the metadata
     * @throws MetadataException if the text is not JSON, not tflbnn metadata ("format"), written
     *     by a newer tflbnn ("version"), or a field is missing or invalid; the message names the
     *     field by its dotted path (and for invalid JSON, the character offset)
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
            checkConversion(extra);
        }
        String modelSha256 = null;
        if (fields.containsKey("model_sha256")) {
            modelSha256 = readSha256(fields.get("model_sha256"), "model_sha256",
                    "the .tflite file");
        }
        return new ModelMetadata(name, labels, preprocessing, extra, modelSha256);
    }

    private static void checkFormat(Map<String, Object> fields) throws MetadataException {
        if (!fields.containsKey("format")) {
            throw new MetadataException("format is missing: not a tflbnn model metadata file "
                    + "(it has no \"format\": \"" + FORMAT + "\")");
        }
        Object format = fields.get("format");
        if (!FORMAT.equals(format)) {
            throw new MetadataException("format must be \"" + FORMAT + "\" (not a tflbnn model "
                    + "metadata file), got " + MetadataFields.describe(format));
        }
    }

    private static void checkVersion(Map<String, Object> fields) throws MetadataException {
        long version = MetadataFields.asInteger(
                MetadataFields.require(fields, "version", "version"), "version");
        if (version > VERSION) {
            throw new MetadataException("version must be " + VERSION + ", got " + version
                    + ": this model.json was written by a newer tflbnn (update the app or "
                    + "re-export the model)");
        }
        if (version != VERSION) {
            throw new MetadataException("version must be " + VERSION + ", got " + version);
        }
    }

    private static List<String> readLabels(Map<String, Object> fields) throws MetadataException {
        List<Object> values = MetadataFields.asArray(
                MetadataFields.require(fields, "labels", "labels"), "labels");
        if (values.isEmpty()) {
            throw new MetadataException("labels must not be empty");
        }
        List<String> labels = new ArrayList<String>(values.size());
        Map<String, Integer> seen = new HashMap<String, Integer>();
        for (int i = 0; i < values.size(); i++) {
            String path = "labels[" + i + "]";
            String label = MetadataFields.asString(values.get(i), path);
            if (label.isEmpty()) {
                throw new MetadataException(path + " must not be empty");
            }
            Integer first = seen.put(label, Integer.valueOf(i));
            if (first != null) {
                throw new MetadataException(path + " \"" + label + "\" is a duplicate of labels["
                        + first + "]: class names must be unique");
            }
            labels.add(label);
        }
        return labels;
    }

    /**
     * The conversion report in {@code extra.conversion}: an object whose {@code float_twin} (the
     * float model Python's {@code bench} opens next to this one) is, unless absent or null, a bare
     * file name, so a sidecar cannot point a reader at a file outside the model's folder, and
     * whose {@code float_twin_sha256}, unless absent or null, is a SHA-256. The app opens
     * neither, but refuses the same files Python refuses.
     */
    private static void checkConversion(Map<String, Object> extra) throws MetadataException {
        if (!extra.containsKey("conversion")) {
            return;
        }
        String path = "extra.conversion";
        Map<String, Object> conversion = MetadataFields.asObject(extra.get("conversion"), path);
        Object twinValue = conversion.get("float_twin");
        if (twinValue != null) {
            String twinPath = path + ".float_twin";
            String twin = MetadataFields.asString(twinValue, twinPath);
            if (twin.isEmpty() || twin.equals(".") || twin.equals("..")
                    || twin.indexOf('/') >= 0 || twin.indexOf('\\') >= 0) {
                throw new MetadataException(twinPath + " must be a bare file name in the model's "
                        + "folder (no / or \\, not . or ..), got " + MetadataFields.describe(twin));
            }
        }
        Object twinDigest = conversion.get("float_twin_sha256");
        if (twinDigest != null) {
            readSha256(twinDigest, path + ".float_twin_sha256", "the float twin");
        }
    }

    /** A SHA-256 field: 64 lowercase hex digits; returns it. */
    private static String readSha256(Object value, String path, String ofWhat)
            throws MetadataException {
        String digest = MetadataFields.asString(value, path);
        if (!ModelDigest.isSha256Hex(digest)) {
            throw new MetadataException(path + " must be " + ModelDigest.HEX_LENGTH
                    + " lowercase hex digits (the SHA-256 of " + ofWhat + "), got "
                    + MetadataFields.describe(digest));
        }
        return digest;
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

    /**
     * @return the SHA-256 of the model file this metadata belongs to, 64 lowercase hex digits,
     *     or null when the file records none
     */
    public String modelSha256() {
        return modelSha256;
    }
}
