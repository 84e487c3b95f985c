package org.tflbnn.demo;

import android.content.ContentResolver;
import android.content.res.AssetManager;

import org.tflbnn.demo.core.Classifier;
import org.tflbnn.demo.core.InvalidModelException;
import org.tflbnn.demo.core.MetadataException;
import org.tflbnn.demo.core.ModelDigest;
import org.tflbnn.demo.core.ModelMetadata;
import org.tflbnn.demo.core.TfliteModel;

import java.io.ByteArrayOutputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;

/** Reads a .tflite model and its .json metadata and checks that they belong together. */
final class ModelReader {

    /** The bundled default model, in app/src/main/assets. */
    static final String ASSET_MODEL = "model.tflite";
    static final String ASSET_METADATA = "model.json";

    // Bounds so that picking a wrong file (a video, say) fails with a message instead of
    // exhausting the heap. Binary models are small; these leave plenty of room.
    private static final int MAX_MODEL_BYTES = 256 * 1024 * 1024;
    private static final int MAX_METADATA_BYTES = 16 * 1024 * 1024;

    private static final Charset UTF_8 = Charset.forName("UTF-8");

    private ModelReader() {
    }

    /** Opens one of the files to read; the Android sources (assets, documents) implement it. */
    interface StreamOpener {
        /**
         * @return the file's content, or null if the provider returned nothing
         * @throws IOException if it cannot be opened (FileNotFoundException when it is missing)
         */
        InputStream open() throws IOException;
    }

    /**
     * Reads the default model bundled as assets/model.tflite and assets/model.json.
     *
     * @param assets the app's assets
     * @return the checked model
     * @throws ModelLoadException if a file is missing, unreadable or invalid, or they do not match
     */
    static LoadedModel fromAssets(final AssetManager assets) throws ModelLoadException {
        return fromBundle(new StreamOpener() {
            @Override
            public InputStream open() throws IOException {
                return assets.open(ASSET_MODEL);
            }
        }, new StreamOpener() {
            @Override
            public InputStream open() throws IOException {
                return assets.open(ASSET_METADATA);
            }
        });
    }

    /**
     * {@link #fromAssets} without Android: reads and checks the bundled pair.
     *
     * @param model opens assets/model.tflite
     * @param metadata opens assets/model.json
     * @return the checked model
     * @throws ModelLoadException if a file is missing, unreadable or invalid, or they do not match
     */
    static LoadedModel fromBundle(StreamOpener model, StreamOpener metadata)
            throws ModelLoadException {
        String modelName = "assets/" + ASSET_MODEL;
        String metadataName = "assets/" + ASSET_METADATA;
        byte[] modelBytes;
        byte[] metadataBytes;
        try {
            modelBytes = readAll(model.open(), MAX_MODEL_BYTES);
            metadataBytes = readAll(metadata.open(), MAX_METADATA_BYTES);
        } catch (IOException failed) {
            throw new ModelLoadException("cannot read the bundled model (" + modelName + ", "
                    + metadataName + "): " + failed.getMessage(), failed);
        }
        return check(modelName, modelBytes, metadataName, metadataBytes);
    }

    /**
     * Reads a model and its metadata chosen with the document picker.
     *
     * @param resolver to open the documents
     * @param documents which document is the model and which the metadata
     * @return the checked model
     * @throws ModelLoadException if a file is unreadable or invalid, or they do not match
     */
    static LoadedModel fromDocuments(final ContentResolver resolver,
            final ModelSelection documents) throws ModelLoadException {
        byte[] model = readDocument(new StreamOpener() {
            @Override
            public InputStream open() throws IOException {
                return resolver.openInputStream(documents.modelUri());
            }
        }, documents.modelName(), MAX_MODEL_BYTES);
        byte[] metadata = readDocument(new StreamOpener() {
            @Override
            public InputStream open() throws IOException {
                return resolver.openInputStream(documents.metadataUri());
            }
        }, documents.metadataName(), MAX_METADATA_BYTES);
        return check(documents.modelName(), model, documents.metadataName(), metadata);
    }

    /**
     * Checks that a model file and a metadata file belong together.
     *
     * @param modelName the .tflite file's name as shown to the user
     * @param modelBytes its content
     * @param metadataName the .json file's name as shown to the user
     * @param metadataBytes its content, UTF-8
     * @return the checked model
     * @throws ModelLoadException naming the file: not a TFLite model, metadata that is not valid
     *     tflbnn metadata, metadata without the model's SHA-256 or with another one (a modified
     *     model file, or the metadata of another model), or metadata that does not fit the model
     */
    static LoadedModel check(String modelName, byte[] modelBytes, String metadataName,
            byte[] metadataBytes) throws ModelLoadException {
        // The TFLite Interpreter accepts a model buffer only if it is memory-mapped or direct in
        // native byte order (IllegalArgumentException otherwise).
        ByteBuffer buffer = ByteBuffer.allocateDirect(modelBytes.length)
                .order(ByteOrder.nativeOrder());
        buffer.put(modelBytes);
        buffer.rewind();
        TfliteModel tflite;
        try {
            tflite = TfliteModel.read(buffer);
        } catch (InvalidModelException invalid) {
            // The core's message already says "not a TFLite model" or "corrupt ...".
            throw new ModelLoadException(modelName + ": " + invalid.getMessage(), invalid);
        }
        ModelMetadata metadata;
        try {
            metadata = ModelMetadata.parse(new String(metadataBytes, UTF_8));
        } catch (MetadataException invalid) {
            throw new ModelLoadException(metadataName + ": " + invalid.getMessage(), invalid);
        }
        try {
            // Before anything trusts the bytes: a model with flipped weights still parses and
            // runs, and would give wrong answers without a word.
            ModelDigest.verify(modelName, modelBytes, metadataName, metadata);
        } catch (InvalidModelException mismatch) {
            throw new ModelLoadException(mismatch.getMessage(), mismatch);
        }
        try {
            Classifier.checkCompatible(tflite, metadata);
        } catch (InvalidModelException mismatch) {
            throw new ModelLoadException(metadataName + " does not match " + modelName + ": "
                    + mismatch.getMessage(), mismatch);
        }
        return new LoadedModel(modelName, metadataName, buffer, tflite, metadata);
    }

    /**
     * Reads a picked document, turning every failure into a message that names it.
     *
     * @param document opens it
     * @param name its display name
     * @param limit the most bytes it may have
     * @return its content
     * @throws ModelLoadException if it cannot be opened, read or permitted, or is too large
     */
    static byte[] readDocument(StreamOpener document, String name, int limit)
            throws ModelLoadException {
        try {
            InputStream stream = document.open();
            if (stream == null) {
                throw new ModelLoadException("cannot open " + name
                        + ": the provider returned nothing");
            }
            return readAll(stream, limit);
        } catch (FileNotFoundException missing) {
            throw new ModelLoadException("cannot open " + name + ": " + missing.getMessage(),
                    missing);
        } catch (IOException failed) {
            throw new ModelLoadException("cannot read " + name + ": " + failed.getMessage(),
                    failed);
        } catch (SecurityException denied) {
            throw new ModelLoadException("no permission to read " + name + ": "
                    + denied.getMessage(), denied);
        }
    }

    /** Reads a stream to its end and closes it; fails past {@code limit} bytes. */
    private static byte[] readAll(InputStream stream, int limit) throws IOException {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] chunk = new byte[64 * 1024];
            int total = 0;
            int count;
            while ((count = stream.read(chunk)) != -1) {
                total += count;
                if (total > limit) {
                    throw new IOException("larger than " + (limit / (1024 * 1024))
                            + " MB; is it the right file?");
                }
                out.write(chunk, 0, count);
            }
            return out.toByteArray();
        } finally {
            stream.close();
        }
    }
}
