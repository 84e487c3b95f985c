package org.tflbnn.demo.core;

import java.util.List;
import java.util.Map;

/**
 * Typed reads of fields from a parsed JSON object, each failing with a {@link MetadataException}
 * that names the field by its path (e.g. {@code preprocessing.mean}).
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
            throw new MetadataException(path + " must be a JSON object, got " + describe(value));
        }
        return (Map<String, Object>) value;
    }

    /** A JSON array field; returns it as a list. */
    @SuppressWarnings("unchecked")
    static List<Object> asArray(Object value, String path) throws MetadataException {
        if (!(value instanceof List)) {
            throw new MetadataException(path + " must be a JSON array, got " + describe(value));
        }
        return (List<Object>) value;
    }

    /** A JSON number field; returns it as a double. */
    static double asNumber(Object value, String path) throws MetadataException {
        if (!(value instanceof Double)) {
            throw new MetadataException(path + " must be a number, got " + describe(value));
        }
        return ((Double) value).doubleValue();
    }

    /** A JSON number with no fractional part that fits an int; returns it. */
    static int asInteger(Object value, String path) throws MetadataException {
        double number = asNumber(value, path);
        if (number != Math.rint(number) || Math.abs(number) > Integer.MAX_VALUE) {
            throw new MetadataException(path + " must be an integer, got " + describe(value));
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

    /** A short description of a parsed JSON value for error messages. */
    static String describe(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof String) {
            return "the string \"" + value + "\"";
        }
        if (value instanceof Double) {
            return formatNumber(((Double) value).doubleValue());
        }
        if (value instanceof Map) {
            return "an object";
        }
        if (value instanceof List) {
            return "an array";
        }
        return String.valueOf(value);
    }

    /** A number as JSON would write it: integers without ".0". */
    static String formatNumber(double number) {
        if (number == Math.rint(number) && Math.abs(number) < 1e15) {
            return String.valueOf((long) number);
        }
        return String.valueOf(number);
    }
}
