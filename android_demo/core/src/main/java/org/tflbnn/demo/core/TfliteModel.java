package org.tflbnn.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The facts of a {@code .tflite} file that the app checks and shows, read straight from the
 * FlatBuffer (TFLite's {@code schema.fbs}) without an interpreter: the main subgraph's input and
 * output tensors and its operators. Names match the host-side {@code tflbnn} tools: builtin ops
 * by their schema name ("CONV_2D"), custom ops by their custom code ("LceBconv2d").
 */
public final class TfliteModel {
    /** The FlatBuffer file identifier of every TFLite model, at bytes 4..8. */
    static final String IDENTIFIER = "TFL3";
    /** The Larq Compute Engine's binary convolution. */
    static final String LCE_BCONV = "LceBconv2d";
    /** The custom ops of the LCE runtime; a model using any needs the LCE interpreter. */
    private static final List<String> LCE_CUSTOM_OPS = Collections.unmodifiableList(Arrays.asList(
            "LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"));

    // Field indices from TFLite's schema.fbs.
    private static final int MODEL_OPERATOR_CODES = 1;
    private static final int MODEL_SUBGRAPHS = 2;
    private static final int OPCODE_DEPRECATED_BUILTIN_CODE = 0;
    private static final int OPCODE_CUSTOM_CODE = 1;
    private static final int OPCODE_BUILTIN_CODE = 3;
    private static final int SUBGRAPH_TENSORS = 0;
    private static final int SUBGRAPH_INPUTS = 1;
    private static final int SUBGRAPH_OUTPUTS = 2;
    private static final int SUBGRAPH_OPERATORS = 3;
    private static final int TENSOR_SHAPE = 0;
    private static final int TENSOR_TYPE = 1;
    private static final int OPERATOR_OPCODE_INDEX = 0;

    private final long sizeBytes;
    private final List<int[]> inputShapes;
    private final List<String> inputTypes;
    private final List<int[]> outputShapes;
    private final List<String> outputTypes;
    private final Map<String, Integer> opCounts;
    private final boolean usesLceOps;

    private TfliteModel(long sizeBytes, List<int[]> inputShapes, List<String> inputTypes,
                        List<int[]> outputShapes, List<String> outputTypes,
                        Map<String, Integer> opCounts, boolean usesLceOps) {
        this.sizeBytes = sizeBytes;
        this.inputShapes = inputShapes;
        this.inputTypes = inputTypes;
        this.outputShapes = outputShapes;
        this.outputTypes = outputTypes;
        this.opCounts = opCounts;
        this.usesLceOps = usesLceOps;
    }

    /**
     * Reads a model. Checks the size, the "TFL3" file identifier and that every offset followed
     * stays inside the buffer.
     *
     * @param bytes the model file, from its position to its limit (e.g. a memory-mapped asset);
     *     neither its position nor its byte order is changed
     * @return the model's facts
     * @throws InvalidModelException if the bytes are not a TFLite model, are truncated or corrupt,
     *     or the main subgraph has no input or no output; the message says which
     */
    public static TfliteModel read(ByteBuffer bytes) throws InvalidModelException {
        ByteBuffer data = bytes.slice().order(ByteOrder.LITTLE_ENDIAN);
        int size = data.limit();
        if (size < 8) {
            throw new InvalidModelException("not a TFLite model: " + size + " bytes is too short "
                    + "(a model starts with an 8-byte header ending in \"" + IDENTIFIER + "\")");
        }
        byte[] identifier = new byte[IDENTIFIER.length()];
        boolean isTflite = true;
        for (int i = 0; i < identifier.length; i++) {
            identifier[i] = data.get(4 + i);
            isTflite &= identifier[i] == IDENTIFIER.charAt(i);
        }
        if (!isTflite) {
            throw new InvalidModelException("not a TFLite model: file identifier \""
                    + printable(identifier) + "\" at bytes 4..8, expected \"" + IDENTIFIER + "\"");
        }
        FlatBufferTable model = FlatBufferTable.root(data, "model");
        List<OperatorCode> codes = readOperatorCodes(model);
        FlatBufferTable[] subgraphs = model.getTableVector(MODEL_SUBGRAPHS, "subgraphs");
        if (subgraphs.length == 0) {
            throw new InvalidModelException("corrupt TFLite model: it has no subgraphs");
        }
        FlatBufferTable main = subgraphs[0];
        FlatBufferTable[] tensors = main.getTableVector(SUBGRAPH_TENSORS, "tensors");
        List<int[]> inputShapes = new ArrayList<int[]>();
        List<String> inputTypes = new ArrayList<String>();
        readTensors(main, SUBGRAPH_INPUTS, "inputs", tensors, inputShapes, inputTypes);
        List<int[]> outputShapes = new ArrayList<int[]>();
        List<String> outputTypes = new ArrayList<String>();
        readTensors(main, SUBGRAPH_OUTPUTS, "outputs", tensors, outputShapes, outputTypes);
        if (inputShapes.isEmpty() || outputShapes.isEmpty()) {
            throw new InvalidModelException("TFLite model has " + inputShapes.size()
                    + " inputs and " + outputShapes.size() + " outputs; a classifier needs one "
                    + "of each");
        }
        List<OperatorCode> operators = readOperators(main, codes);
        boolean usesLce = false;
        for (OperatorCode operator : operators) {
            usesLce |= operator.custom && LCE_CUSTOM_OPS.contains(operator.name);
        }
        return new TfliteModel(size, inputShapes, inputTypes, outputShapes, outputTypes,
                countByName(operators), usesLce);
    }

    /** An entry of the model's operator_codes table: the op's name and whether it is custom. */
    private static final class OperatorCode {
        final String name;
        final boolean custom;

        OperatorCode(String name, boolean custom) {
            this.name = name;
            this.custom = custom;
        }
    }

    private static List<OperatorCode> readOperatorCodes(FlatBufferTable model)
            throws InvalidModelException {
        FlatBufferTable[] tables = model.getTableVector(MODEL_OPERATOR_CODES, "operator_codes");
        List<OperatorCode> codes = new ArrayList<OperatorCode>(tables.length);
        for (FlatBufferTable code : tables) {
            String custom = code.getString(OPCODE_CUSTOM_CODE, "custom_code");
            if (custom != null && !custom.isEmpty()) {
                codes.add(new OperatorCode(custom, true));
                continue;
            }
            // Codes below 127 are also stored in the int8 deprecated field for old readers;
            // newer codes only in builtin_code. The larger of the two is the real one.
            int deprecated = code.getByte(OPCODE_DEPRECATED_BUILTIN_CODE,
                    "deprecated_builtin_code", 0);
            int builtin = code.getInt(OPCODE_BUILTIN_CODE, "builtin_code", 0);
            codes.add(new OperatorCode(BuiltinOperators.name(Math.max(deprecated, builtin)),
                    false));
        }
        return codes;
    }

    /** The operator code of each operator of a subgraph, in execution order. */
    private static List<OperatorCode> readOperators(FlatBufferTable subgraph,
                                                    List<OperatorCode> codes)
            throws InvalidModelException {
        FlatBufferTable[] tables = subgraph.getTableVector(SUBGRAPH_OPERATORS, "operators");
        List<OperatorCode> operators = new ArrayList<OperatorCode>(tables.length);
        for (FlatBufferTable operator : tables) {
            long opcode = operator.getUnsignedInt(OPERATOR_OPCODE_INDEX, "opcode_index", 0);
            if (opcode >= codes.size()) {
                throw new InvalidModelException("corrupt TFLite model: " + operator.path()
                        + " uses operator code " + opcode + " of " + codes.size());
            }
            operators.add(codes.get((int) opcode));
        }
        return operators;
    }

    private static void readTensors(FlatBufferTable subgraph, int field, String name,
                                    FlatBufferTable[] tensors, List<int[]> shapes,
                                    List<String> types) throws InvalidModelException {
        for (int index : subgraph.getIntVector(field, name)) {
            if (index < 0 || index >= tensors.length) {
                throw new InvalidModelException("corrupt TFLite model: " + subgraph.path() + "."
                        + name + " names tensor " + index + " of " + tensors.length);
            }
            FlatBufferTable tensor = tensors[index];
            shapes.add(tensor.getIntVector(TENSOR_SHAPE, "shape"));
            types.add(TensorTypes.name(tensor.getByte(TENSOR_TYPE, "type", 0)));
        }
    }

    /** Op name to count, most frequent first, ties in order of first appearance. */
    private static Map<String, Integer> countByName(List<OperatorCode> operators) {
        Map<String, Integer> counts = new LinkedHashMap<String, Integer>();
        for (OperatorCode operator : operators) {
            Integer count = counts.get(operator.name);
            counts.put(operator.name, count == null ? 1 : count + 1);
        }
        List<Map.Entry<String, Integer>> entries =
                new ArrayList<Map.Entry<String, Integer>>(counts.entrySet());
        // Collections.sort is stable: equal counts keep their first-appearance order.
        Collections.sort(entries, new java.util.Comparator<Map.Entry<String, Integer>>() {
            @Override
            public int compare(Map.Entry<String, Integer> a, Map.Entry<String, Integer> b) {
                return b.getValue().compareTo(a.getValue());
            }
        });
        Map<String, Integer> sorted = new LinkedHashMap<String, Integer>();
        for (Map.Entry<String, Integer> entry : entries) {
            sorted.put(entry.getKey(), entry.getValue());
        }
        return Collections.unmodifiableMap(sorted);
    }

    private static String printable(byte[] bytes) {
        StringBuilder text = new StringBuilder();
        for (byte b : bytes) {
            int value = b & 0xff;
            if (value >= 0x20 && value < 0x7f && value != '"' && value != '\\') {
                text.append((char) value);
            } else {
                text.append(String.format(java.util.Locale.ROOT, "\\x%02x", value));
            }
        }
        return text.toString();
    }

    /** @return the file's size in bytes */
    public long sizeBytes() {
        return sizeBytes;
    }

    /** @return the number of inputs of the main subgraph (at least 1) */
    public int inputCount() {
        return inputShapes.size();
    }

    /** @return the number of outputs of the main subgraph (at least 1) */
    public int outputCount() {
        return outputShapes.size();
    }

    /** @return a copy of the first input's shape, batch axis included, e.g. {1, 28, 28, 1} */
    public int[] inputShape() {
        return inputShapes.get(0).clone();
    }

    /** @return the first input's type, lower case, e.g. "float32" */
    public String inputType() {
        return inputTypes.get(0);
    }

    /** @return a copy of the first output's shape, e.g. {1, 10} */
    public int[] outputShape() {
        return outputShapes.get(0).clone();
    }

    /** @return the first output's type, lower case, e.g. "float32" */
    public String outputType() {
        return outputTypes.get(0);
    }

    /**
     * @return op name to count in the main subgraph, most frequent first (unmodifiable): builtin
     *     ops by schema name ("CONV_2D", or "BUILTIN_n" for codes newer than this reader),
     *     custom ops by custom code ("LceBconv2d")
     */
    public Map<String, Integer> opCounts() {
        return opCounts;
    }

    /** @return the number of LCE binary convolutions ("LceBconv2d") in the main subgraph */
    public int binaryConvCount() {
        Integer count = opCounts.get(LCE_BCONV);
        return count == null ? 0 : count;
    }

    /** @return whether the main subgraph uses any LCE custom op (needs the LCE runtime) */
    public boolean usesLceOps() {
        return usesLceOps;
    }

    /** @return e.g. "361828 bytes, input [1, 28, 28, 1] float32, output [1, 10] float32" */
    @Override
    public String toString() {
        return sizeBytes + " bytes, input " + Arrays.toString(inputShapes.get(0)) + " "
                + inputTypes.get(0) + ", output " + Arrays.toString(outputShapes.get(0)) + " "
                + outputTypes.get(0);
    }
}
