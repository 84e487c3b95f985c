package org.tflbnn.demo;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * Files of the app module for the JVM tests: the bundled model in src/main/assets and the
 * sources. The module folder comes from the system property {@value #APP_DIR_PROPERTY}
 * (tools/run_jvm_tests.sh and app/build.gradle set it), else the working directory when it
 * is the module (Gradle's default for unit tests), else ./app (run from android_demo).
 */
final class AppFiles {
    static final String APP_DIR_PROPERTY = "tflbnn.app.dir";

    private AppFiles() {
    }

    /** The app module's folder (android_demo/app); fails with the fix when it is not found. */
    static File appDir() throws IOException {
        String configured = System.getProperty(APP_DIR_PROPERTY);
        File[] candidates = configured != null && !configured.isEmpty()
                ? new File[] {new File(configured)}
                : new File[] {new File("."), new File("app")};
        for (File candidate : candidates) {
            if (new File(candidate, "src/main/assets/" + ModelReader.ASSET_MODEL).isFile()) {
                return candidate;
            }
        }
        throw new IOException("the app module (with src/main/assets/" + ModelReader.ASSET_MODEL
                + ") is not at " + candidates[0].getAbsolutePath() + "; set -D"
                + APP_DIR_PROPERTY + "=.../android_demo/app");
    }

    /** A file of the app module, e.g. "src/main/assets/model.json". */
    static File file(String relativePath) throws IOException {
        File file = new File(appDir(), relativePath);
        if (!file.isFile()) {
            throw new IOException(file.getAbsolutePath() + " not found");
        }
        return file;
    }

    /** The bytes of a bundled asset, e.g. "model.tflite". */
    static byte[] asset(String name) throws IOException {
        return bytes(file("src/main/assets/" + name));
    }

    static byte[] bytes(File file) throws IOException {
        InputStream in = new FileInputStream(file);
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] chunk = new byte[8192];
            int read;
            while ((read = in.read(chunk)) > 0) {
                out.write(chunk, 0, read);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    /** The bundled model and metadata, read and checked as the app does at start-up. */
    static LoadedModel bundledModel() throws IOException, ModelLoadException {
        return ModelReader.check("model.tflite", asset(ModelReader.ASSET_MODEL), "model.json",
                asset(ModelReader.ASSET_METADATA));
    }
}
