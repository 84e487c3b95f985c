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
    /** Inputs must fit one Java array (and a direct buffer of 4 bytes per float). */
    private static final int MAX_INPUT_LENGTH = Integer.MAX_VALUE / 4;

    private final int height;
    private final int width;
    private final int channels;
    private final double[] mean;
    private final double[] std;
    private final double centerCrop;

    /**
     * @param height model input height in pixels, positive
     * @param width model input width in pixels, positive
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
        if (height <= 0 || width <= 0) {
            throw new IllegalArgumentException("height and width must be positive, got "
                    + height + "x" + width);
        }
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("channels must be 1 or 3, got " + channels);
        }
        if ((long) height * width * channels > MAX_INPUT_LENGTH) {
            throw new IllegalArgumentException("an input of " + height + "x" + width + "x"
                    + channels + " floats is too large (at most " + MAX_INPUT_LENGTH + ")");
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
     * Reads and validates the {@code preprocessing} object of {@code model.json}, with the rules
     * of Python's {@code Preprocessing}: height and width positive integers, channels 1 or 3,
     * mean and std one number per channel, std positive, center_crop in (0, 1] (1.0 when absent),
     * and the optional resize, layout and dtype fields exactly "bilinear", "NHWC", "float32".
     *
     * @param fields the parsed JSON object (as {@link Json#parse} returns it)
     * @return the preprocessing it describes
     * @throws MetadataException if a field is missing, of the wrong type or out of range; the
     *     message names the field, e.g. {@code preprocessing.std[0]}
     */
    public static Preprocessing fromMap(Map<String, Object> fields) throws MetadataException {
        if (fields == null) {
            throw new MetadataException(PATH + " must be a JSON object, got null");
        }
        int height = positiveInteger(fields, "height");
        int width = positiveInteger(fields, "width");
        int channels = MetadataFields.asInteger(
                MetadataFields.require(fields, "channels", PATH + ".channels"),
                PATH + ".channels");
        if (channels != 1 && channels != 3) {
            throw new MetadataException(PATH + ".channels must be 1 or 3, got " + channels);
        }
        if ((long) height * width * channels > MAX_INPUT_LENGTH) {
            throw new MetadataException(PATH + ".height and width give an input of " + height
                    + "x" + width + "x" + channels + " floats, more than " + MAX_INPUT_LENGTH);
        }
        double[] mean = perChannel(fields, "mean", channels);
        double[] std = perChannel(fields, "std", channels);
        for (int c = 0; c < channels; c++) {
            if (!(std[c] > 0)) {
                throw new MetadataException(PATH + ".std[" + c + "] must be positive, got "
                        + MetadataFields.formatNumber(std[c]));
            }
        }
        double centerCrop = 1.0;
        if (fields.containsKey("center_crop")) {
            centerCrop = MetadataFields.asNumber(fields.get("center_crop"), PATH + ".center_crop");
            if (!(centerCrop > 0 && centerCrop <= 1)) {
                throw new MetadataException(PATH + ".center_crop must be in (0, 1], got "
                        + MetadataFields.formatNumber(centerCrop));
            }
        }
        requireFixed(fields, "resize", "bilinear", "the only resize method the app implements");
        requireFixed(fields, "layout", "NHWC", "the only layout the app implements");
        requireFixed(fields, "dtype", "float32", "the only input type the app implements");
        return new Preprocessing(height, width, channels, mean, std, centerCrop);
    }

    private static int positiveInteger(Map<String, Object> fields, String key)
            throws MetadataException {
        String path = PATH + "." + key;
        int value = MetadataFields.asInteger(MetadataFields.require(fields, key, path), path);
        if (value <= 0) {
            throw new MetadataException(path + " must be a positive integer, got " + value);
        }
        return value;
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
