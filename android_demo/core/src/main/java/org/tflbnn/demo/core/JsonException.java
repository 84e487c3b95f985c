package org.tflbnn.demo.core;

/** A text that is not valid JSON (RFC 8259); the message names the character offset. */
public final class JsonException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int offset;

    /**
     * @param problem what is wrong, e.g. "unterminated string"
     * @param offset character offset (0-based) in the parsed text where the problem was found
     */
    public JsonException(String problem, int offset) {
        super("invalid JSON at offset " + offset + ": " + problem);
        this.offset = offset;
    }

    /** @return the character offset (0-based) where the problem was found */
    public int offset() {
        return offset;
    }
}
