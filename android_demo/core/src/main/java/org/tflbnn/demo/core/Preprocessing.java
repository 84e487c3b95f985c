package org.tflbnn.demo.core;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * How an image becomes the model's float input: the parameters of the preprocessing rule that
 * {@link ImagePreprocessor} applies (the {@code preprocessing} object of {@code model.json}, as
 * Python's {@code tflbnn.metadata.Preprocessing} writes it).
 */
public final class Preprocessing {
    private static final String PATH = "preprocessing";
    /**
     * The largest height or width, as in Python's schema. 8192 x 8192 x 3 floats (805 MB) still
     * fit one Java array and one direct buffer; a larger side is a typo, not a model.
     */
    public static final int MAX_SIDE = 8192;

    private final int height;
    private final int width;
    private final int channels;
    private final double[] mean;
    private final double[] std;
    private final double centerCrop;

    /**
     * @param height model input height in pixels, 1..{@value #MAX_SIDE}
     * @param width model input width in pixels, 1..{@value #MAX_SIDE}
     * @param channels 1 (grey) or 3 (RGB)
     * @param mean per-channel mean in [0, 1] pixel units, one value per channel (copied)
     * @param std per-channel standard deviation in [0, 1] pixel units, each positive (copied)
     * @param centerCrop fraction of each side kept by the centre crop, in (0, 1]
     * @throws IllegalArgumentException if any value is out of range or mean/std have the wrong
     *     length
     * @throws NullPointerException if mean or std is null
     */
    public Preprocessing(int height, int width, int channels, double[] mean, double[] std,
                         double centerCrop) {
        if (height < 1 || width < 1 || height > MAX_SIDE || width > MAX_SIDE) {
            throw new IllegalArgumentException("height and width must be in 1.." + MAX_SIDE
                    + ", got " + height + "x" + width);
        }
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("channels must be 1 or 3, got " + channels);
        }
        if (mean.length != channels || std.length != channels) {
            throw new IllegalArgumentException("mean and std need " + channels
                    + " values (one per channel), got " + mean.length + " and " + std.length);
        }
        for (int c = 0; c < channels; c++) {
            if (Double.isNaN(mean[c]) || Double.isInfinite(mean[c])) {
                throw new IllegalArgumentException("mean must be finite, got "
                        + Arrays.toString(mean));
            }
            if (!(std[c] > 0) || Double.isInfinite(std[c])) {
                throw new IllegalArgumentException("std must be positive and finite, got "
                        + Arrays.toString(std));
            }
        }
        if (!(centerCrop > 0 && centerCrop <= 1)) {
            throw new IllegalArgumentException("center_crop must be in (0, 1], got " + centerCrop);
        }
        this.height = height;
        this.width = width;
        this.channels = channels;
        this.mean = mean.clone();
        this.std = std.clone();
        this.centerCrop = centerCrop;
    }

    /**
     * Reads and validates the {@code preprocessing} object of {@code model.json} with the rules
     * of Python's schema ({@code tflbnn.metadata}): height and width JSON integers in
     * 1..{@value #MAX_SIDE}, channels 1 or 3, mean and std one finite number per channel, every
     * std above 0, center_crop in (0, 1] (1.0 when absent), and the optional resize, layout and
     * dtype fields exactly "bilinear", "NHWC", "float32".
     *
     * @param fields the parsed JSON object (as {@link Json#parse} returns it)
     * @return the preprocessing it describes
     * @throws MetadataException if a field is missing, of the wrong type or out of range; the
     *     message names the field, e.g. {@code preprocessing.std[0]}
     */
    public static Preprocessing fromMap(Map<String, Object> fields) throws MetadataException {
        if (fields == null) {
            throw new MetadataException(PATH + " must be an object, got null");
        }
        int height = side(fields, "height");
        int width = side(fields, "width");
        String channelsPath = PATH + ".channels";
        long channels = MetadataFields.asInteger(
                MetadataFields.require(fields, "channels", channelsPath), channelsPath);
        if (channels != 1 && channels != 3) {
            throw new MetadataException(channelsPath + " must be 1 or 3, got " + channels);
        }
        double[] mean = perChannel(fields, "mean", (int) channels);
        double[] std = perChannel(fields, "std", (int) channels);
        for (int c = 0; c < channels; c++) {
            if (!(std[c] > 0)) {
                throw new MetadataException(PATH + ".std[" + c + "] must be > 0, got "
                        + std[c]);
            }
        }
        double centerCrop = 1.0;
        if (fields.containsKey("center_crop")) {
            centerCrop = MetadataFields.asNumber(fields.get("center_crop"), PATH + ".center_crop");
            if (!(centerCrop > 0 && centerCrop <= 1)) {
                throw new MetadataException(PATH + ".center_crop must be in (0, 1], got "
                        + centerCrop);
            }
        }
        requireFixed(fields, "resize", "bilinear", "the only resize method the app implements");
        requireFixed(fields, "layout", "NHWC", "the only layout the app implements");
        requireFixed(fields, "dtype", "float32", "the only input type the app implements");
        return new Preprocessing(height, width, (int) channels, mean, std, centerCrop);
    }

    private static int side(Map<String, Object> fields, String key) throws MetadataException {
        String path = PATH + "." + key;
        return MetadataFields.asInteger(MetadataFields.require(fields, key, path), path, 1,
                MAX_SIDE);
    }

    private static double[] perChannel(Map<String, Object> fields, String key, int channels)
            throws MetadataException {
        String path = PATH + "." + key;
        List<Object> list = MetadataFields.asArray(MetadataFields.require(fields, key, path), path);
        if (list.size() != channels) {
            throw new MetadataException(path + " needs " + channels + " values (one per channel), "
                    + "got " + list.size());
        }
        double[] values = new double[channels];
        for (int c = 0; c < channels; c++) {
            values[c] = MetadataFields.asNumber(list.get(c), path + "[" + c + "]");
        }
        return values;
    }

    private static void requireFixed(Map<String, Object> fields, String key, String expected,
                                     String why) throws MetadataException {
        if (!fields.containsKey(key)) {
            return;
        }
        String path = PATH + "." + key;
        String value = MetadataFields.asString(fields.get(key), path);
        if (!expected.equals(value)) {
            throw new MetadataException(path + " must be \"" + expected + "\" (" + why + "), got \""
                    + value + "\"");
        }
    }

    /** @return model input height in pixels */
    public int height() {
        return height;
    }

    /** @return model input width in pixels */
    public int width() {
        return width;
    }

    /** @return 1 (grey) or 3 (RGB) */
    public int channels() {
        return channels;
    }

    /** @return a copy of the per-channel means, in [0, 1] pixel units */
    public double[] mean() {
        return mean.clone();
    }

    /** @return a copy of the per-channel standard deviations, in [0, 1] pixel units */
    public double[] std() {
        return std.clone();
    }

    /** @return the fraction of each side kept by the centre crop, in (0, 1] */
    public double centerCrop() {
        return centerCrop;
    }

    /** @return the input shape without the batch axis: {height, width, channels} */
    public int[] inputShape() {
        return new int[] {height, width, channels};
    }

    /** @return the number of floats in one input: height * width * channels */
    public int inputLength() {
        return height * width * channels;
    }

    /** @return a one-line description for logs and the UI */
    @Override
    public String toString() {
        return height + "x" + width + "x" + channels + ", mean " + Arrays.toString(mean)
                + ", std " + Arrays.toString(std) + ", center_crop " + centerCrop;
    }
}
