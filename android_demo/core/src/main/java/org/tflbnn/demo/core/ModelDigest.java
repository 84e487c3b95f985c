package org.tflbnn.demo.core;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * The SHA-256 that ties a {@code .tflite} file to its metadata. {@code tflbnn convert} records
 * the digest of the model's bytes in the metadata's {@code model_sha256} (64 lowercase hex
 * digits, what {@code sha256sum} prints); before the app hands a model to the interpreter it
 * recomputes the digest and refuses a file that was modified (a few flipped bytes in the weights
 * still load and give wrong answers) or that belongs to other metadata.
 */
public final class ModelDigest {
    /** Hex digits in a SHA-256 digest. */
    public static final int HEX_LENGTH = 64;

    private static final char[] HEX_DIGITS = "0123456789abcdef".toCharArray();

    private ModelDigest() {
    }

    /**
     * @param bytes the data, e.g. a whole model file
     * @return its SHA-256 as 64 lowercase hex digits
     */
    public static String sha256Hex(byte[] bytes) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException impossible) {
            // Every Java platform and every Android version must provide SHA-256.
            throw new IllegalStateException("this platform has no SHA-256", impossible);
        }
        byte[] hash = digest.digest(bytes);
        char[] hex = new char[hash.length * 2];
        for (int i = 0; i < hash.length; i++) {
            hex[2 * i] = HEX_DIGITS[(hash[i] >> 4) & 0xf];
            hex[2 * i + 1] = HEX_DIGITS[hash[i] & 0xf];
        }
        return new String(hex);
    }

    /** @return whether text is 64 lowercase hex digits, the form model_sha256 must have */
    static boolean isSha256Hex(String text) {
        if (text.length() != HEX_LENGTH) {
            return false;
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
                return false;
            }
        }
        return true;
    }

    /**
     * Checks that a model file is the one its metadata was written for.
     *
     * @param modelName the model file's name as shown to the user
     * @param modelBytes the whole model file
     * @param metadataName the metadata file's name as shown to the user
     * @param metadata the parsed metadata
     * @throws InvalidModelException if the metadata records no model_sha256 (written before
     *     tflbnn recorded it; the model must be converted again) or the file's SHA-256 differs
     *     from it; the message names both files and, for a mismatch, both digests
     */
    public static void verify(String modelName, byte[] modelBytes, String metadataName,
                              ModelMetadata metadata) throws InvalidModelException {
        String expected = metadata.modelSha256();
        if (expected == null) {
            throw new InvalidModelException(metadataName + ": model_sha256 is missing, so "
                    + "nothing proves that " + modelName + " is the model it was written for; "
                    + "convert the model again with tflbnn convert (which records it) and copy "
                    + "both files it writes");
        }
        String actual = sha256Hex(modelBytes);
        if (!actual.equals(expected)) {
            throw new InvalidModelException(modelName + ": SHA-256 " + actual + " does not "
                    + "match " + metadataName + " model_sha256 " + expected + ": the model file "
                    + "was modified or belongs to other metadata; re-run tflbnn convert and copy "
                    + "the .tflite and .json it writes together");
        }
    }
}
