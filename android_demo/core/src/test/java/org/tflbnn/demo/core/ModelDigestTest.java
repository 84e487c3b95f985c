package org.tflbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.Collections;
import org.junit.Test;

/**
 * The SHA-256 check that ties a model file to its metadata. Expected digests are independent of
 * the code under test: FIPS 180-2's test vectors, and for the model files what {@code sha256sum}
 * printed (the digest {@code tflbnn convert} records).
 */
public class ModelDigestTest {
    /** sha256sum core/src/test/resources/org/tflbnn/demo/core/tiny_lce.tflite */
    private static final String TINY_LCE_SHA256 =
            "cf9b14f2742adb3a5717607e35d1e3cb6229cf74d3ca5149e2a4556ff63f7983";
    /** sha256sum .../tiny_float.tflite */
    private static final String TINY_FLOAT_SHA256 =
            "12fa1555ccf1670cac01cf297374977ee30179f13c6a914c1e917aae1589c52b";

    private static ModelMetadata metadataWith(String modelSha256) {
        return new ModelMetadata("tiny", Arrays.asList("a", "b", "c", "d"),
                new Preprocessing(6, 5, 3, new double[] {0, 0, 0}, new double[] {1, 1, 1}, 1),
                Collections.<String, Object>emptyMap(), modelSha256);
    }

    private static String verifyFails(byte[] model, ModelMetadata metadata) {
        try {
            ModelDigest.verify("tiny.tflite", model, "tiny.json", metadata);
        } catch (InvalidModelException expected) {
            return expected.getMessage();
        }
        throw new AssertionError("verify accepted the model");
    }

    @Test
    public void digestsMatchTheStandardTestVectors() {
        assertEquals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ModelDigest.sha256Hex(new byte[0]));
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                ModelDigest.sha256Hex("abc".getBytes(TestResources.UTF_8)));
        byte[] million = new byte[1000000];
        Arrays.fill(million, (byte) 'a');
        assertEquals("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                ModelDigest.sha256Hex(million));
    }

    @Test
    public void digestOfAModelFileIsWhatSha256sumPrints() throws Exception {
        assertEquals(TINY_LCE_SHA256,
                ModelDigest.sha256Hex(TestResources.bytes("tiny_lce.tflite")));
        assertEquals(TINY_FLOAT_SHA256,
                ModelDigest.sha256Hex(TestResources.bytes("tiny_float.tflite")));
    }

    @Test
    public void theModelItsMetadataNamesIsAccepted() throws Exception {
        ModelDigest.verify("tiny.tflite", TestResources.bytes("tiny_lce.tflite"), "tiny.json",
                metadataWith(TINY_LCE_SHA256));
    }

    @Test
    public void anyFlippedByteIsAMismatchNamingBothFilesAndDigests() throws Exception {
        byte[] model = TestResources.bytes("tiny_lce.tflite");
        // First byte, a byte in the middle (the weights) and the last byte; one bit and all bits.
        for (int index : new int[] {0, model.length / 2, model.length - 1}) {
            for (int mask : new int[] {0x01, 0xff}) {
                byte[] flipped = model.clone();
                flipped[index] ^= (byte) mask;
                String actual = ModelDigest.sha256Hex(flipped);
                assertFalse(actual.equals(TINY_LCE_SHA256));
                assertEquals("tiny.tflite: SHA-256 " + actual + " does not match tiny.json "
                        + "model_sha256 " + TINY_LCE_SHA256 + ": the model file was modified or "
                        + "belongs to other metadata; re-run tflbnn convert and copy the .tflite "
                        + "and .json it writes together",
                        verifyFails(flipped, metadataWith(TINY_LCE_SHA256)));
            }
        }
    }

    @Test
    public void truncatedOrExtendedModelIsAMismatch() throws Exception {
        byte[] model = TestResources.bytes("tiny_lce.tflite");
        ModelMetadata metadata = metadataWith(TINY_LCE_SHA256);
        assertTrue(verifyFails(Arrays.copyOf(model, model.length - 1), metadata)
                .contains("does not match tiny.json model_sha256 " + TINY_LCE_SHA256));
        assertTrue(verifyFails(Arrays.copyOf(model, model.length + 1), metadata)
                .contains("does not match tiny.json model_sha256 " + TINY_LCE_SHA256));
    }

    @Test
    public void metadataOfAnotherModelIsAMismatch() throws Exception {
        String message = verifyFails(TestResources.bytes("tiny_float.tflite"),
                metadataWith(TINY_LCE_SHA256));
        assertTrue(message, message.startsWith("tiny.tflite: SHA-256 " + TINY_FLOAT_SHA256
                + " does not match tiny.json model_sha256 " + TINY_LCE_SHA256));
    }

    @Test
    public void metadataWithoutADigestIsRefused() throws Exception {
        assertEquals("tiny.json: model_sha256 is missing, so nothing proves that tiny.tflite is "
                + "the model it was written for; convert the model again with tflbnn convert "
                + "(which records it) and copy both files it writes",
                verifyFails(TestResources.bytes("tiny_lce.tflite"), metadataWith(null)));
    }

    @Test
    public void onlyLowercaseHexOfTheRightLengthIsADigest() {
        assertTrue(ModelDigest.isSha256Hex(TINY_LCE_SHA256));
        assertFalse(ModelDigest.isSha256Hex(TINY_LCE_SHA256.toUpperCase(java.util.Locale.ROOT)));
        assertFalse(ModelDigest.isSha256Hex(TINY_LCE_SHA256.substring(1)));
        assertFalse(ModelDigest.isSha256Hex(TINY_LCE_SHA256 + "0"));
        assertFalse(ModelDigest.isSha256Hex(TINY_LCE_SHA256.replace('f', 'g')));
        assertFalse(ModelDigest.isSha256Hex(""));
        // Non-ASCII digits (U+0663) are not hex digits.
        assertFalse(ModelDigest.isSha256Hex(TINY_LCE_SHA256.replace('3', '\u0663')));
        try {
            metadataWith("not a digest");
            fail("accepted a malformed digest");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().startsWith("model_sha256 must be 64 lowercase hex"));
        }
    }
}
