package org.tflbnn.demo;

/** Turns failures into the one-line messages shown in the status line. */
final class ErrorMessages {

    private ErrorMessages() {
    }

    /**
     * @param error a failure from a background task
     * @return its message as is for the app's own exceptions (they are written for users),
     *     otherwise prefixed with the exception's type, which says more than a bare message
     *     for errors from the runtime or the platform
     */
    static String describe(Exception error) {
        String message = error.getMessage();
        // Plain Exceptions are the worker's own wrappers (out of memory, native library).
        if (error instanceof ModelLoadException || error instanceof ImageDecodeException
                || error instanceof RuntimeUnavailableException
                || error.getClass() == Exception.class) {
            return message;
        }
        String type = error.getClass().getSimpleName();
        return message == null ? type : type + ": " + message;
    }
}
