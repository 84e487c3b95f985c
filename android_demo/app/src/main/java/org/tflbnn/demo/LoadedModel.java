package org.tflbnn.demo;

import org.tflbnn.demo.core.ModelMetadata;
import org.tflbnn.demo.core.TfliteModel;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** A model file checked against its metadata, ready for an engine. Immutable. */
final class LoadedModel {
    private final String fileName;
    private final String metadataFileName;
    private final ByteBuffer bytes;
    private final TfliteModel tflite;
    private final ModelMetadata metadata;

    /**
     * @param fileName the .tflite file's name as shown to the user
     * @param metadataFileName the .json file's name as shown to the user
     * @param bytes the whole .tflite file, direct, never written after this
     * @param tflite what {@link TfliteModel#read} found in {@code bytes}
     * @param metadata the parsed .json, compatible with {@code tflite}
     */
    LoadedModel(String fileName, String metadataFileName, ByteBuffer bytes, TfliteModel tflite,
            ModelMetadata metadata) {
        this.fileName = fileName;
        this.metadataFileName = metadataFileName;
        this.bytes = bytes;
        this.tflite = tflite;
        this.metadata = metadata;
    }

    /** @return the .tflite file's name */
    String fileName() {
        return fileName;
    }

    /** @return the .json file's name */
    String metadataFileName() {
        return metadataFileName;
    }

    /**
     * @return a view of the model bytes positioned at 0, direct and in native byte order as the
     *     TFLite Interpreter requires (a duplicate, so callers never move each other's position;
     *     duplicate() resets the order to big-endian, hence the explicit order)
     */
    ByteBuffer bytes() {
        ByteBuffer view = bytes.duplicate().order(ByteOrder.nativeOrder());
        view.rewind();
        return view;
    }

    /** @return the model's structure (tensors, ops, size) */
    TfliteModel tflite() {
        return tflite;
    }

    /** @return labels and preprocessing */
    ModelMetadata metadata() {
        return metadata;
    }
}
