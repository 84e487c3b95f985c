package org.tflbnn.demo;

/** An image that cannot be decoded into pixels; the message names the image. */
final class ImageDecodeException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message the image and the problem */
    ImageDecodeException(String message) {
        super(message);
    }
}
