package org.tflbnn.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The preprocessing rule of {@code tflbnn.metadata}, reproduced bit for bit in float32:
 * <ol>
 *   <li>channels: RGB as is, or grey with the BT.601 luma weights of
 *       {@code tf.image.rgb_to_grayscale} (grey pixels keep their level);</li>
 *   <li>centre crop keeping {@code center_crop} of each side;</li>
 *   <li>bilinear resize to the model's size (half-pixel centres, no antialiasing), skipped when
 *       the crop already has that size;</li>
 *   <li>{@code (v / 255 - mean[c]) / std[c]} per channel.</li>
 * </ol>
 * Images arrive as ARGB_8888 ints, row-major ({@code argb[y * width + x]}, the layout of
 * Android's {@code Bitmap.getPixels}); alpha is ignored. Tensors are float arrays in HWC order
 * (row-major, channel fastest).
 */
public final class ImagePreprocessor {
    private static final float INVERSE_255 = (float) (1.0 / 255.0);
    private static final float LUMA_RED = (float) 0.2989;
    private static final float LUMA_GREEN = (float) 0.5870;
    private static final float LUMA_BLUE = (float) 0.1140;

    private ImagePreprocessor() {
    }

    /**
     * Applies the whole rule. Only the pixels that the resize samples are converted, so a large
     * photo costs no full-size float copy.
     *
     * @param argb the image, ARGB_8888, row-major, length width * height
     * @param width image width in pixels, positive
     * @param height image height in pixels, positive
     * @param p the rule's parameters
     * @return the model input, length {@code p.inputLength()}, HWC
     * @throws IllegalArgumentException if the size is not positive or argb has the wrong length
     */
    public static float[] preprocess(int[] argb, int width, int height, Preprocessing p) {
        checkImage(argb, width, height);
        int[] box = centerCropBox(height, width, p.centerCrop());
        int top = box[0];
        int left = box[1];
        int channels = p.channels();
        BilinearAxis rows = new BilinearAxis(box[2], p.height());
        BilinearAxis columns = new BilinearAxis(box[3], p.width());
        // The crop's size may equal the target: the axes are then the identity and interpolation
        // returns the pixel unchanged, which is exactly the rule's "resize skipped".
        float[] out = new float[p.inputLength()];
        int index = 0;
        for (int y = 0; y < p.height(); y++) {
            int upperRow = (top + rows.lower[y]) * width + left;
            int lowerRow = (top + rows.upper[y]) * width + left;
            float yLerp = rows.lerp[y];
            for (int x = 0; x < p.width(); x++) {
                int leftColumn = columns.lower[x];
                int rightColumn = columns.upper[x];
                float xLerp = columns.lerp[x];
                int topLeft = argb[upperRow + leftColumn];
                int topRight = argb[upperRow + rightColumn];
                int bottomLeft = argb[lowerRow + leftColumn];
                int bottomRight = argb[lowerRow + rightColumn];
                for (int c = 0; c < channels; c++) {
                    out[index++] = BilinearAxis.interpolate(
                            channelValue(topLeft, c, channels), channelValue(topRight, c, channels),
                            channelValue(bottomLeft, c, channels),
                            channelValue(bottomRight, c, channels), xLerp, yLerp);
                }
            }
        }
        normalizeInPlace(out, p);
        return out;
    }

    /**
     * Step 1: converts ARGB pixels to 1 or 3 channels.
     *
     * @param argb the image, ARGB_8888, row-major, length width * height
     * @param width image width in pixels, positive
     * @param height image height in pixels, positive
     * @param channels 3 for r, g, b as they are; 1 for {@link #greyLevel}
     * @return values 0..255 as floats, HWC, length width * height * channels
     * @throws IllegalArgumentException if the size or channel count is invalid or argb has the
     *     wrong length
     */
    public static float[] toChannels(int[] argb, int width, int height, int channels) {
        checkImage(argb, width, height);
        checkChannels(channels);
        float[] out = new float[argb.length * channels];
        int index = 0;
        for (int pixel : argb) {
            for (int c = 0; c < channels; c++) {
                out[index++] = channelValue(pixel, c, channels);
            }
        }
        return out;
    }

    /**
     * Step 1's grey formula, in float32 like {@code tf.image.rgb_to_grayscale}: luma of the
     * 0..1-scaled channels with weights 0.2989, 0.5870, 0.1140, times 255.5, truncated and
     * clamped to 0..255. Grey pixels (red == green == blue) keep their level.
     *
     * @param red 0..255
     * @param green 0..255
     * @param blue 0..255
     * @return the grey level, 0..255
     */
    public static int greyLevel(int red, int green, int blue) {
        float luma = (red * INVERSE_255) * LUMA_RED + (green * INVERSE_255) * LUMA_GREEN;
        luma = luma + (blue * INVERSE_255) * LUMA_BLUE;
        int grey = (int) (luma * 255.5f);
        return Math.max(0, Math.min(255, grey));
    }

    /**
     * Step 2: the window kept by the centre crop. Each side keeps
     * {@code max(1, floor(side * fraction + 0.5))} pixels (in double), centred with the spare
     * pixel, if any, after the window: offset {@code (side - kept) / 2}.
     *
     * @param height image height, positive
     * @param width image width, positive
     * @param fraction fraction of each side kept, in (0, 1]
     * @return {top, left, keptHeight, keptWidth}
     * @throws IllegalArgumentException if a size is not positive or fraction is outside (0, 1]
     */
    public static int[] centerCropBox(int height, int width, double fraction) {
        if (height <= 0 || width <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + height + "x"
                    + width);
        }
        if (!(fraction > 0 && fraction <= 1)) {
            throw new IllegalArgumentException("center_crop must be in (0, 1], got " + fraction);
        }
        int keptHeight = keptSide(height, fraction);
        int keptWidth = keptSide(width, fraction);
        return new int[] {(height - keptHeight) / 2, (width - keptWidth) / 2, keptHeight,
                          keptWidth};
    }

    private static int keptSide(int side, double fraction) {
        return Math.max(1, (int) Math.floor(side * fraction + 0.5));
    }

    /**
     * Cuts a window out of an HWC tensor.
     *
     * @param pixels HWC values, length height * width * channels
     * @param height tensor height
     * @param width tensor width
     * @param channels values per pixel
     * @param box {top, left, keptHeight, keptWidth}, inside the tensor, as from
     *     {@link #centerCropBox}
     * @return the window, HWC, length keptHeight * keptWidth * channels
     * @throws IllegalArgumentException if the sizes disagree with pixels or the box is not inside
     */
    public static float[] crop(float[] pixels, int height, int width, int channels, int[] box) {
        checkTensor(pixels, height, width, channels);
        if (box.length != 4) {
            throw new IllegalArgumentException("box must be {top, left, height, width}, got "
                    + box.length + " values");
        }
        int top = box[0];
        int left = box[1];
        int keptHeight = box[2];
        int keptWidth = box[3];
        if (top < 0 || left < 0 || keptHeight <= 0 || keptWidth <= 0
                || top > height - keptHeight || left > width - keptWidth) {
            throw new IllegalArgumentException("crop box " + top + "," + left + " " + keptHeight
                    + "x" + keptWidth + " is not inside the " + height + "x" + width + " image");
        }
        float[] out = new float[keptHeight * keptWidth * channels];
        int rowLength = keptWidth * channels;
        for (int y = 0; y < keptHeight; y++) {
            System.arraycopy(pixels, ((top + y) * width + left) * channels, out, y * rowLength,
                    rowLength);
        }
        return out;
    }

    /**
     * Step 3: bilinear resize with half-pixel centres and no antialiasing, in float32, exactly as
     * {@code tf.image.resize(method="bilinear")}; the output is not rounded. Equal sizes return
     * an identical copy.
     *
     * @param pixels HWC values, length height * width * channels
     * @param height input height, positive
     * @param width input width, positive
     * @param channels values per pixel, positive
     * @param outHeight output height, positive
     * @param outWidth output width, positive
     * @return HWC values, length outHeight * outWidth * channels
     * @throws IllegalArgumentException if a size is not positive or pixels has the wrong length
     */
    public static float[] resizeBilinear(float[] pixels, int height, int width, int channels,
                                         int outHeight, int outWidth) {
        checkTensor(pixels, height, width, channels);
        BilinearAxis rows = new BilinearAxis(height, outHeight);
        BilinearAxis columns = new BilinearAxis(width, outWidth);
        float[] out = new float[outHeight * outWidth * channels];
        int index = 0;
        for (int y = 0; y < outHeight; y++) {
            int upperRow = rows.lower[y] * width;
            int lowerRow = rows.upper[y] * width;
            float yLerp = rows.lerp[y];
            for (int x = 0; x < outWidth; x++) {
                int topLeft = (upperRow + columns.lower[x]) * channels;
                int topRight = (upperRow + columns.upper[x]) * channels;
                int bottomLeft = (lowerRow + columns.lower[x]) * channels;
                int bottomRight = (lowerRow + columns.upper[x]) * channels;
                float xLerp = columns.lerp[x];
                for (int c = 0; c < channels; c++) {
                    out[index++] = BilinearAxis.interpolate(pixels[topLeft + c],
                            pixels[topRight + c], pixels[bottomLeft + c], pixels[bottomRight + c],
                            xLerp, yLerp);
                }
            }
        }
        return out;
    }

    /**
     * Step 4: {@code (v / 255 - mean[c]) / std[c]} per channel, every operation in float32.
     *
     * @param pixels HWC values 0..255, length a multiple of {@code p.channels()}; overwritten
     * @param p supplies channels, mean and std
     * @throws IllegalArgumentException if the length is not a multiple of the channel count
     */
    public static void normalizeInPlace(float[] pixels, Preprocessing p) {
        int channels = p.channels();
        if (pixels.length % channels != 0) {
            throw new IllegalArgumentException(pixels.length + " values do not divide into "
                    + channels + " channels");
        }
        double[] mean = p.mean();
        double[] std = p.std();
        float[] meanF = new float[channels];
        float[] stdF = new float[channels];
        for (int c = 0; c < channels; c++) {
            meanF[c] = (float) mean[c];
            stdF[c] = (float) std[c];
        }
        for (int i = 0; i < pixels.length; i++) {
            int c = i % channels;
            pixels[i] = (pixels[i] / 255.0f - meanF[c]) / stdF[c];
        }
    }

    /**
     * Packs a tensor as the model's input buffer.
     *
     * @param tensor float values in the model's order
     * @return a direct buffer in native byte order, 4 bytes per value, position 0, limit at the end
     */
    public static ByteBuffer toInputBuffer(float[] tensor) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(tensor.length * 4)
                .order(ByteOrder.nativeOrder());
        buffer.asFloatBuffer().put(tensor);
        return buffer;
    }

    /** Channel {@code c} of an ARGB pixel converted to {@code channels} channels, as a float. */
    private static float channelValue(int pixel, int c, int channels) {
        int red = (pixel >> 16) & 0xff;
        int green = (pixel >> 8) & 0xff;
        int blue = pixel & 0xff;
        if (channels == 1) {
            return greyLevel(red, green, blue);
        }
        return c == 0 ? red : (c == 1 ? green : blue);
    }

    private static void checkImage(int[] argb, int width, int height) {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + width + "x"
                    + height + " (width x height)");
        }
        if ((long) width * height != argb.length) {
            throw new IllegalArgumentException("a " + width + "x" + height + " image needs "
                    + (long) width * height + " pixels, got " + argb.length);
        }
    }

    private static void checkChannels(int channels) {
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("channels must be 1 or 3, got " + channels);
        }
    }

    private static void checkTensor(float[] pixels, int height, int width, int channels) {
        if (height <= 0 || width <= 0 || channels <= 0) {
            throw new IllegalArgumentException("tensor size must be positive, got " + height + "x"
                    + width + "x" + channels);
        }
        if ((long) height * width * channels != pixels.length) {
            throw new IllegalArgumentException("a " + height + "x" + width + "x" + channels
                    + " tensor needs " + (long) height * width * channels + " values, got "
                    + pixels.length);
        }
    }
}
