package org.tflbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The JVM core against the golden files Python writes with {@code tflbnn app-golden}: the same
 * decoded pixels must give the same model input (bit for bit), the same logits the same top-5,
 * and every golden model the same facts. Where the golden folder is missing the tests fail
 * (they are not skipped) with the command that makes it.
 */
public class GoldenParityTest {
    /** Spec bound on |Java - Python| per input value; the rule is reproduced exactly, so 0. */
    private static final double INPUT_TOLERANCE = 1e-6;
    private static final double PROBABILITY_TOLERANCE = 1e-9;
    private static final int TOP_K = 5;
    private static File goldenDir;
    private static Map<String, Object> manifest;

    @BeforeClass
    public static void readManifest() throws IOException, JsonException {
        String property = System.getProperty("tflbnn.golden.dir");
        goldenDir = new File(property == null ? "build/android-golden" : property);
        File file = new File(goldenDir, "manifest.json");
        if (property == null || !file.isFile()) {
            fail("golden files not found (" + file + "; system property tflbnn.golden.dir is "
                    + property + "). Make them from the repository root with\n"
                    + "  .venv/bin/tflbnn app-golden --model runs/demo/model.tflite "
                    + "--out build/android-golden --fashion-mnist 20 tests/data/photos/*\n"
                    + "then run android_demo/tools/run_jvm_tests.sh [GOLDEN_DIR] (or Gradle with "
                    + "-PtflbnnGoldenDir=DIR or TFLBNN_GOLDEN_DIR=DIR).");
        }
        manifest = object(Json.parse(new String(read(file), TestResources.UTF_8)));
        assertEquals("tflbnn-android-golden", manifest.get("format"));
        assertEquals(Long.valueOf(1), manifest.get("version"));
        assertTrue("the golden manifest has no cases", !cases().isEmpty());
    }

    @Test
    public void preprocessingMatchesPythonForEveryCase() throws Exception {
        double maxDifference = 0;
        int values = 0;
        for (Object item : cases()) {
            Map<String, Object> testCase = object(item);
            String name = (String) testCase.get("name");
            Preprocessing p = Preprocessing.fromMap(object(testCase.get("preprocessing")));
            Image image = decodedImage(testCase);
            float[] java = ImagePreprocessor.preprocess(image.argb, image.width, image.height, p);
            float[] python = floats(new File(goldenDir, (String) testCase.get("input")));
            assertArrayEquals(name, TestResources.ints(testCase.get("input_shape")),
                    p.inputShape());
            assertEquals(name + ": input length", python.length, java.length);
            for (int i = 0; i < java.length; i++) {
                double difference = Math.abs((double) java[i] - python[i]);
                assertTrue(name + " differs at " + i + ": Java " + java[i] + ", Python "
                        + python[i], difference <= INPUT_TOLERANCE);
                maxDifference = Math.max(maxDifference, difference);
            }
            values += java.length;
        }
        System.out.println(String.format(Locale.ROOT, "golden preprocessing: %d cases, %d values,"
                + " max |Java - Python| = %s", cases().size(), values, maxDifference));
    }

    @Test
    public void rankingMatchesPythonForEveryModelCase() throws Exception {
        double maxDifference = 0;
        int ranked = 0;
        for (Object item : cases()) {
            Map<String, Object> testCase = object(item);
            if (testCase.get("logits") == null) {
                continue;
            }
            String name = (String) testCase.get("name");
            List<String> labels = metadataOf(testCase).labels();
            double[] probabilities = Predictions.softmaxIfLogits(logits(testCase));
            List<Prediction> java = Predictions.topK(probabilities, labels, TOP_K);
            List<?> python = (List<?>) testCase.get("top5");
            assertEquals(name, python.size(), java.size());
            for (int rank = 0; rank < java.size(); rank++) {
                Map<String, Object> expected = object(python.get(rank));
                assertEquals(name + " rank " + rank, ((Number) expected.get("index")).intValue(),
                        java.get(rank).index);
                assertEquals(name + " rank " + rank, expected.get("label"), java.get(rank).label);
                double difference = Math.abs(((Number) expected.get("probability")).doubleValue()
                        - java.get(rank).probability);
                assertTrue(name + " rank " + rank + " probability differs by " + difference,
                        difference <= PROBABILITY_TOLERANCE);
                maxDifference = Math.max(maxDifference, difference);
            }
            ranked++;
        }
        assertTrue("no golden case has logits", ranked > 0);
        System.out.println(String.format(Locale.ROOT, "golden ranking: %d cases, max |Java - "
                + "Python| probability = %s", ranked, maxDifference));
    }

    @Test
    public void classifierFeedsPythonsInputAndRanksLikePython() throws Exception {
        int classified = 0;
        for (Object item : cases()) {
            final Map<String, Object> testCase = object(item);
            if (testCase.get("logits") == null) {
                continue;
            }
            final String name = (String) testCase.get("name");
            final float[] pythonInput = floats(new File(goldenDir,
                    (String) testCase.get("input")));
            final float[] pythonLogits = logits(testCase);
            // Replays the model: checks it is fed Python's input, answers Python's logits.
            InferenceEngine replay = new InferenceEngine() {
                @Override
                public void run(ByteBuffer input, float[] outputs) {
                    FloatBuffer fed = input.order(ByteOrder.nativeOrder()).asFloatBuffer();
                    float[] values = new float[fed.remaining()];
                    fed.get(values);
                    assertArrayEquals(name + ": the engine's input", pythonInput, values, 0);
                    System.arraycopy(pythonLogits, 0, outputs, 0, outputs.length);
                }

                @Override
                public void close() {
                }
            };
            Classifier classifier = new Classifier(replay, modelOf(testCase),
                    metadataOf(testCase));
            Image image = decodedImage(testCase);
            ClassificationResult result = classifier.classify(image.argb, image.width,
                    image.height, 2, TOP_K);
            List<?> python = (List<?>) testCase.get("top5");
            for (int rank = 0; rank < python.size(); rank++) {
                assertEquals(name, object(python.get(rank)).get("label"),
                        result.top().get(rank).label);
            }
            classified++;
        }
        assertTrue("no golden case has logits", classified > 0);
    }

    @Test
    public void modelFactsMatchTheManifest() throws Exception {
        List<?> models = (List<?>) manifest.get("models");
        assertTrue("the golden manifest lists no model", !models.isEmpty());
        for (Object item : models) {
            Map<String, Object> facts = object(item);
            TfliteModel model = readModel(facts);
            TfliteModelTest.assertMatchesFacts((String) facts.get("name"), facts, model);
            ModelMetadata metadata = readMetadata(facts);
            Classifier.checkCompatible(model, metadata);
            // The pair Python wrote passes the app's SHA-256 check, so both sides compute and
            // record the same digest of the same bytes.
            String tflite = (String) facts.get("tflite");
            ModelDigest.verify(tflite, read(new File(goldenDir, tflite)),
                    (String) facts.get("metadata"), metadata);
        }
    }

    @Test
    public void pngDecodingMatchesPilExactly() throws Exception {
        int images = 0;
        for (Map.Entry<String, Map<String, Object>> entry : imagesByFile().entrySet()) {
            if (!entry.getKey().toLowerCase(Locale.ROOT).endsWith(".png")) {
                continue;
            }
            int[] difference = compareWithImageIo(entry.getKey(), entry.getValue());
            assertEquals(entry.getKey() + ": samples differing from PIL's", 0, difference[1]);
            images++;
        }
        assertTrue("no PNG among the golden images", images > 0);
    }

    /**
     * JPEG fixes the entropy-coded DCT coefficients but leaves the decoder some arithmetic
     * freedom: the inverse DCT (accurate integer "islow", fast integer "ifast" or float),
     * chroma upsampling (replication or libjpeg's "fancy" triangular filter) and the
     * fixed-point YCbCr-to-RGB tables may each move a sample by a level or more. TensorFlow's
     * default INTEGER_FAST IDCT, for one, does not match PIL (see tflbnn.data.decode_image).
     * javax.imageio bundles IJG libjpeg 6b with islow and fancy upsampling; PIL links
     * libjpeg-turbo with the same defaults, which libjpeg-turbo keeps bit-exact with libjpeg 6b,
     * so on the golden images the two decoders agree exactly and this test asserts that. If a
     * JDK or Pillow update ever breaks the tie, the difference is a decoder's rounding, not the
     * app's preprocessing (whose parity is checked on Python's decoded pixels above); a bound of
     * a few levels would then be the right assertion. The app itself decodes with Android's
     * BitmapFactory (Skia over libjpeg-turbo, or a vendor codec), which this JVM test cannot run.
     */
    @Test
    public void jpegDecodingMatchesPil() throws Exception {
        int images = 0;
        int maxDifference = 0;
        long differing = 0;
        long samples = 0;
        for (Map.Entry<String, Map<String, Object>> entry : imagesByFile().entrySet()) {
            String file = entry.getKey().toLowerCase(Locale.ROOT);
            if (!file.endsWith(".jpg") && !file.endsWith(".jpeg")) {
                continue;
            }
            int[] difference = compareWithImageIo(entry.getKey(), entry.getValue());
            maxDifference = Math.max(maxDifference, difference[0]);
            differing += difference[1];
            samples += difference[2];
            images++;
        }
        assertTrue("no JPEG among the golden images", images > 0);
        String summary = String.format(Locale.ROOT, "golden JPEG decoding (javax.imageio vs PIL):"
                + " %d images, max difference %d levels, %d of %d samples differ", images,
                maxDifference, differing, samples);
        System.out.println(summary);
        assertEquals(summary, 0, differing);
    }

    /**
     * Decodes an encoded golden image with javax.imageio, reading the raster's samples (not
     * BufferedImage.getRGB, which converts grey images through a colour space), and compares
     * them with Python's decoded pixels.
     *
     * @return {max |difference|, number of differing samples, number of samples}
     */
    private static int[] compareWithImageIo(String file, Map<String, Object> testCase)
            throws IOException {
        BufferedImage decoded = ImageIO.read(new File(goldenDir, file));
        assertTrue(file + ": javax.imageio cannot read it", decoded != null);
        int[] shape = TestResources.ints(testCase.get("decoded_shape"));
        byte[] python = read(new File(goldenDir, (String) testCase.get("decoded")));
        assertEquals(file + ": height", shape[0], decoded.getHeight());
        assertEquals(file + ": width", shape[1], decoded.getWidth());
        Raster raster = decoded.getRaster();
        int channels = shape[2];
        int[] pixel = new int[raster.getNumBands()];
        int maxDifference = 0;
        int differing = 0;
        for (int y = 0; y < shape[0]; y++) {
            for (int x = 0; x < shape[1]; x++) {
                int[] samples = samplesAt(decoded, raster, x, y, channels, pixel);
                for (int c = 0; c < channels; c++) {
                    int expected = python[(y * shape[1] + x) * channels + c] & 0xff;
                    int difference = Math.abs(samples[c] - expected);
                    maxDifference = Math.max(maxDifference, difference);
                    if (difference != 0) {
                        differing++;
                    }
                }
            }
        }
        return new int[] {maxDifference, differing, shape[0] * shape[1] * channels};
    }

    /** The first {@code channels} 8-bit samples of a pixel; palette indices are looked up. */
    private static int[] samplesAt(BufferedImage image, Raster raster, int x, int y,
                                   int channels, int[] pixel) {
        raster.getPixel(x, y, pixel);
        if (image.getColorModel() instanceof IndexColorModel) {
            IndexColorModel palette = (IndexColorModel) image.getColorModel();
            int index = pixel[0];
            return new int[] {palette.getRed(index), palette.getGreen(index),
                              palette.getBlue(index)};
        }
        assertEquals("bits per sample", 8, raster.getSampleModel().getSampleSize(0));
        assertTrue("bands: " + pixel.length + " for " + channels + " channels",
                pixel.length == channels || pixel.length == channels + 1);
        return pixel;
    }

    /** One case per encoded image file (the first that uses it). */
    private static Map<String, Map<String, Object>> imagesByFile() {
        Map<String, Map<String, Object>> images = new LinkedHashMap<String, Map<String, Object>>();
        for (Object item : cases()) {
            Map<String, Object> testCase = object(item);
            String file = (String) testCase.get("image");
            if (!images.containsKey(file)) {
                images.put(file, testCase);
            }
        }
        return images;
    }

    /** Python's decoded pixels as ARGB: grey repeated to r = g = b, opaque. */
    private static Image decodedImage(Map<String, Object> testCase) throws IOException {
        int[] shape = TestResources.ints(testCase.get("decoded_shape"));
        byte[] pixels = read(new File(goldenDir, (String) testCase.get("decoded")));
        int height = shape[0];
        int width = shape[1];
        int channels = shape[2];
        assertEquals(testCase.get("name") + ": decoded bytes", height * width * channels,
                pixels.length);
        int[] argb = new int[height * width];
        for (int i = 0; i < argb.length; i++) {
            int red = pixels[i * channels] & 0xff;
            int green = channels == 3 ? pixels[i * channels + 1] & 0xff : red;
            int blue = channels == 3 ? pixels[i * channels + 2] & 0xff : red;
            argb[i] = 0xff000000 | (red << 16) | (green << 8) | blue;
        }
        return new Image(argb, width, height);
    }

    private static final class Image {
        final int[] argb;
        final int width;
        final int height;

        Image(int[] argb, int width, int height) {
            this.argb = argb;
            this.width = width;
            this.height = height;
        }
    }

    private static Map<String, Object> modelFacts(Map<String, Object> testCase) {
        for (Object item : (List<?>) manifest.get("models")) {
            Map<String, Object> facts = object(item);
            if (facts.get("name").equals(testCase.get("model"))) {
                return facts;
            }
        }
        throw new AssertionError(testCase.get("name") + ": model " + testCase.get("model")
                + " is not in the manifest");
    }

    private static TfliteModel modelOf(Map<String, Object> testCase) throws Exception {
        return readModel(modelFacts(testCase));
    }

    private static ModelMetadata metadataOf(Map<String, Object> testCase) throws Exception {
        return readMetadata(modelFacts(testCase));
    }

    private static TfliteModel readModel(Map<String, Object> facts) throws Exception {
        return TfliteModel.read(ByteBuffer.wrap(read(new File(goldenDir,
                (String) facts.get("tflite")))));
    }

    private static ModelMetadata readMetadata(Map<String, Object> facts) throws Exception {
        return ModelMetadata.parse(new String(read(new File(goldenDir,
                (String) facts.get("metadata"))), TestResources.UTF_8));
    }

    private static float[] logits(Map<String, Object> testCase) {
        List<?> values = (List<?>) testCase.get("logits");
        float[] logits = new float[values.size()];
        for (int i = 0; i < logits.length; i++) {
            // Written as the shortest decimal of each float32, so the cast is exact.
            logits[i] = ((Number) values.get(i)).floatValue();
        }
        return logits;
    }

    private static List<?> cases() {
        return (List<?>) manifest.get("cases");
    }

    private static float[] floats(File file) throws IOException {
        byte[] bytes = read(file);
        assertEquals(file + ": not whole float32 values", 0, bytes.length % 4);
        FloatBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
                .asFloatBuffer();
        float[] values = new float[buffer.remaining()];
        buffer.get(values);
        return values;
    }

    private static byte[] read(File file) throws IOException {
        InputStream in = new FileInputStream(file);
        try {
            return TestResources.readAll(in);
        } finally {
            in.close();
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> object(Object value) {
        return (Map<String, Object>) value;
    }
}
