package org.tflbnn.demo.core;

/**
 * Names of TFLite's tensor types ({@code TensorType} in {@code schema.fbs}), lower-case as the
 * host-side {@code tflbnn} tools print them ("float32", "int32", ...).
 */
final class TensorTypes {
    /** The type of a float32 tensor, the only input and output type the app feeds and reads. */
    static final String FLOAT32 = "float32";

    private static final String[] NAMES = {
        "float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64",
        "int8", "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4"
    };

    private TensorTypes() {
    }

    /**
     * @param code a TensorType code
     * @return its lower-case name, or "type_&lt;code&gt;" for a code this table lacks
     */
    static String name(int code) {
        return code >= 0 && code < NAMES.length ? NAMES[code] : "type_" + code;
    }
}
