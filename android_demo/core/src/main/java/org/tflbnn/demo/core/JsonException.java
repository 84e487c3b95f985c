package org.tflbnn.demo.core;

/**
 * A text that is not valid JSON (RFC 8259); the message names the character offset and, below
 * the top level, the path of the value where the problem was found.
 */
public final class JsonException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int offset;
    private final String path;

    /**
     * @param problem what is wrong, e.g. "unterminated string"
     * @param offset character offset (0-based) in the parsed text where the problem was found
     * @param path where in the document, e.g. "preprocessing.std[0]"; "" for the top level
     */
    public JsonException(String problem, int offset, String path) {
        super("invalid JSON at offset " + offset + (path.isEmpty() ? "" : " (in " + path + ")")
                + ": " + problem);
        this.offset = offset;
        this.path = path;
    }

    /** @return the character offset (0-based) where the problem was found */
    public int offset() {
        return offset;
    }

    /** @return the path of the value being read, e.g. "preprocessing.std[0]"; "" at top level */
    public String path() {
        return path;
    }
}
