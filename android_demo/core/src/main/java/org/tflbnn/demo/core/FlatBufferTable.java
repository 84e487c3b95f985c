package org.tflbnn.demo.core;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;

/**
 * One table of a FlatBuffer, read with a bounds check before every access, so a corrupt or
 * truncated file gives an {@link InvalidModelException} naming the table and field (never an
 * IndexOutOfBoundsException or a BufferUnderflowException).
 *
 * <p>FlatBuffers layout: a table starts with a signed 32-bit offset back to its vtable; the
 * vtable holds its own size, the table's size and one 16-bit offset per field (0 = absent).
 * Offsets to strings, vectors and sub-tables are unsigned 32-bit and relative to where they are
 * stored. Everything is little-endian.
 */
final class FlatBufferTable {
    private static final Charset UTF_8 = Charset.forName("UTF-8");

    private final ByteBuffer data;
    private final int position;
    private final int vtable;
    private final int vtableSize;
    /** Where the table is in the model, e.g. "subgraphs[0].tensors[3]", for error messages. */
    private final String path;

    private FlatBufferTable(ByteBuffer data, int position, int vtable, int vtableSize,
                            String path) {
        this.data = data;
        this.position = position;
        this.vtable = vtable;
        this.vtableSize = vtableSize;
        this.path = path;
    }

    /**
     * The root table of a buffer, whose offset is the first 4 bytes.
     *
     * @param data the whole buffer, little-endian, index 0 = its start
     * @param path the root's name in error messages
     */
    static FlatBufferTable root(ByteBuffer data, String path) throws InvalidModelException {
        return at(data, target(data, 0, path), path);
    }

    /** The table at an absolute position; checks its vtable lies in the buffer. */
    private static FlatBufferTable at(ByteBuffer data, long position, String path)
            throws InvalidModelException {
        checkRange(data, position, 4, path);
        long vtable = position - data.getInt((int) position);
        checkRange(data, vtable, 4, path + " (vtable)");
        int vtableSize = data.getShort((int) vtable) & 0xffff;
        int tableSize = data.getShort((int) vtable + 2) & 0xffff;
        if (vtableSize < 4 || vtableSize % 2 != 0) {
            throw corrupt(path + " has an invalid vtable size " + vtableSize);
        }
        checkRange(data, vtable, vtableSize, path + " (vtable)");
        checkRange(data, position, Math.max(tableSize, 4), path);
        return new FlatBufferTable(data, (int) position, (int) vtable, vtableSize, path);
    }

    /** @return the table's name in error messages */
    String path() {
        return path;
    }

    /**
     * An int8 field.
     *
     * @param field the field's index in the schema
     * @param name the field's name in error messages
     * @param absent the schema's default, returned when the field is absent
     */
    int getByte(int field, String name, int absent) throws InvalidModelException {
        int at = fieldPosition(field, 1, name);
        return at < 0 ? absent : data.get(at);
    }

    /** An int32 field, or {@code absent} (the schema default). */
    int getInt(int field, String name, int absent) throws InvalidModelException {
        int at = fieldPosition(field, 4, name);
        return at < 0 ? absent : data.getInt(at);
    }

    /** A uint32 field, or {@code absent} (the schema default). */
    long getUnsignedInt(int field, String name, long absent) throws InvalidModelException {
        int at = fieldPosition(field, 4, name);
        return at < 0 ? absent : data.getInt(at) & 0xffffffffL;
    }

    /** A sub-table field, or null when absent. */
    FlatBufferTable getTable(int field, String name) throws InvalidModelException {
        int at = fieldPosition(field, 4, name);
        return at < 0 ? null : at(data, target(data, at, path + "." + name), path + "." + name);
    }

    /** A string field decoded as strict UTF-8, or null when absent. */
    String getString(int field, String name) throws InvalidModelException {
        int at = fieldPosition(field, 4, name);
        if (at < 0) {
            return null;
        }
        String fieldPath = path + "." + name;
        long start = target(data, at, fieldPath);
        int length = vectorLength(start, 1, fieldPath);
        ByteBuffer bytes = data.duplicate();
        bytes.position((int) start + 4);
        bytes.limit((int) start + 4 + length);
        try {
            CharBuffer chars = UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(bytes);
            return chars.toString();
        } catch (CharacterCodingException error) {
            throw corrupt(fieldPath + " is not valid UTF-8");
        }
    }

    /** An int32 vector field; an absent vector is empty. */
    int[] getIntVector(int field, String name) throws InvalidModelException {
        int at = fieldPosition(field, 4, name);
        if (at < 0) {
            return new int[0];
        }
        String fieldPath = path + "." + name;
        long start = target(data, at, fieldPath);
        int[] values = new int[vectorLength(start, 4, fieldPath)];
        for (int i = 0; i < values.length; i++) {
            values[i] = data.getInt((int) start + 4 + 4 * i);
        }
        return values;
    }

    /** A vector-of-tables field; an absent vector is empty. */
    FlatBufferTable[] getTableVector(int field, String name) throws InvalidModelException {
        int at = fieldPosition(field, 4, name);
        if (at < 0) {
            return new FlatBufferTable[0];
        }
        String fieldPath = path + "." + name;
        long start = target(data, at, fieldPath);
        FlatBufferTable[] tables = new FlatBufferTable[vectorLength(start, 4, fieldPath)];
        for (int i = 0; i < tables.length; i++) {
            String elementPath = fieldPath + "[" + i + "]";
            int element = (int) start + 4 + 4 * i;
            tables[i] = at(data, target(data, element, elementPath), elementPath);
        }
        return tables;
    }

    /**
     * The absolute position of a field's value, or -1 when the vtable says it is absent.
     * Checks that {@code size} bytes at that position lie in the buffer.
     */
    private int fieldPosition(int field, int size, String name) throws InvalidModelException {
        int entry = 4 + 2 * field;
        if (entry + 2 > vtableSize) {
            return -1; // written by an older schema: the field is absent
        }
        int offset = data.getShort(vtable + entry) & 0xffff;
        if (offset == 0) {
            return -1;
        }
        long at = (long) position + offset;
        checkRange(data, at, size, path + "." + name);
        return (int) at;
    }

    /** Checks a vector's length prefix and that its elements lie in the buffer; returns it. */
    private int vectorLength(long start, int elementSize, String fieldPath)
            throws InvalidModelException {
        checkRange(data, start, 4, fieldPath);
        long length = data.getInt((int) start) & 0xffffffffL;
        checkRange(data, start + 4, length * elementSize, fieldPath + " (" + length
                + " elements)");
        return (int) length;
    }

    /** Follows the unsigned 32-bit offset stored at {@code at}; returns the absolute target. */
    private static long target(ByteBuffer data, long at, String path)
            throws InvalidModelException {
        checkRange(data, at, 4, path);
        return at + (data.getInt((int) at) & 0xffffffffL);
    }

    private static void checkRange(ByteBuffer data, long start, long length, String path)
            throws InvalidModelException {
        if (start < 0 || length < 0 || start + length > data.limit()) {
            throw corrupt(path + " points to bytes " + start + ".." + (start + length)
                    + ", outside the " + data.limit() + "-byte file (truncated or corrupt)");
        }
    }

    private static InvalidModelException corrupt(String problem) {
        return new InvalidModelException("corrupt TFLite model: " + problem);
    }
}
