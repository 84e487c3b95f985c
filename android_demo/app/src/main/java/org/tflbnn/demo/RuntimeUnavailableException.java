package org.tflbnn.demo;

/** The TFLite/LCE runtime cannot be used in this APK or on this device; the message says why. */
final class RuntimeUnavailableException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message why, and what to do about it */
    RuntimeUnavailableException(String message) {
        super(message);
    }
}
