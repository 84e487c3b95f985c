package org.tflbnn.demo.core;

/** Model metadata ({@code model.json}) that cannot be used; the message names the field. */
public class MetadataException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message what is wrong, naming the field, e.g. "preprocessing.std[0] must be ..." */
    public MetadataException(String message) {
        super(message);
    }
}
