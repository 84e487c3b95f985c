package org.tflbnn.demo.core;

import java.util.List;
import java.util.Map;

/**
 * Typed reads of fields from a parsed JSON object, each failing with a {@link MetadataException}
 * that names the field by its path (e.g. {@code preprocessing.mean}). The wording ("must be an
 * integer", "must be a finite number", ...) is the one Python's {@code tflbnn.metadata} uses, so
 * both sides give the same message for the same file (tests/data/sidecar_cases checks it).
 */
final class MetadataFields {
    private MetadataFields() {
    }

    /** The field's value, which must be present (it may be JSON null). */
    static Object require(Map<String, Object> object, String key, String path)
            throws MetadataException {
        if (!object.containsKey(key)) {
            throw new MetadataException(path + " is missing");
        }
        return object.get(key);
    }

    /** A JSON object field; returns it as a map. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> asObject(Object value, String path) throws MetadataException {
        if (!(value instanceof Map)) {
            throw new MetadataException(path + " must be an object, got " + describe(value));
        }
        return (Map<String, Object>) value;
    }

    /** A JSON array field; returns it as a list. */
    @SuppressWarnings("unchecked")
    static List<Object> asArray(Object value, String path) throws MetadataException {
        if (!(value instanceof List)) {
            throw new MetadataException(path + " must be an array, got " + describe(value));
        }
        return (List<Object>) value;
    }

    /**
     * A JSON number field (integer or not; never a boolean); returns it as a double. {@link Json}
     * refuses NaN and Infinity, so the value is always finite.
     */
    static double asNumber(Object value, String path) throws MetadataException {
        if (!(value instanceof Long || value instanceof Double)) {
            throw new MetadataException(path + " must be a finite number, got "
                    + describe(value));
        }
        return ((Number) value).doubleValue();
    }

    /**
     * A number written as a JSON integer: no fraction or exponent ({@code 28}, not {@code 28.0}),
     * never a boolean; returns it.
     */
    static long asInteger(Object value, String path) throws MetadataException {
        if (!(value instanceof Long)) {
            throw new MetadataException(path + " must be an integer, got " + describe(value));
        }
        return ((Long) value).longValue();
    }

    /** {@link #asInteger(Object, String)} within [min, max]; returns it. */
    static int asInteger(Object value, String path, int min, int max) throws MetadataException {
        long number = asInteger(value, path);
        if (number < min || number > max) {
            throw new MetadataException(path + " must be an integer in " + min + ".." + max
                    + ", got " + number);
        }
        return (int) number;
    }

    /** A JSON string field; returns it. */
    static String asString(Object value, String path) throws MetadataException {
        if (!(value instanceof String)) {
            throw new MetadataException(path + " must be a string, got " + describe(value));
        }
        return (String) value;
    }

    /**
     * A short description of a parsed JSON value for error messages; numbers as parsed, so a
     * {@code 1.0} in the file reads "1.0" (not "1", which would hide why it is not an integer).
     */
    static String describe(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof String) {
            return "the string \"" + value + "\"";
        }
        if (value instanceof Boolean) {
            return "the boolean " + value;
        }
        if (value instanceof Map) {
            return "an object";
        }
        if (value instanceof List) {
            return "an array";
        }
        return String.valueOf(value);
    }
}
