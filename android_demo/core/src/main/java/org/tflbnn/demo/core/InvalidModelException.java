package org.tflbnn.demo.core;

/** A model file that is not a usable TFLite flatbuffer, or that does not fit its metadata. */
public class InvalidModelException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message what is wrong, in words a user can act on */
    public InvalidModelException(String message) {
        super(message);
    }
}
