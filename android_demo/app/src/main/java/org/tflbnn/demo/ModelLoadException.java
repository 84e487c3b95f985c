package org.tflbnn.demo;

/** A model or its metadata cannot be used; the message names the file and the problem. */
final class ModelLoadException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message the file and what is wrong with it */
    ModelLoadException(String message) {
        super(message);
    }

    /**
     * @param message the file and what is wrong with it
     * @param cause the underlying failure
     */
    ModelLoadException(String message, Throwable cause) {
        super(message, cause);
    }
}
