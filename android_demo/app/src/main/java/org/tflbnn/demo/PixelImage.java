package org.tflbnn.demo;

import android.graphics.Bitmap;

/** Decoded image pixels as the core expects them, with a bitmap to show. Never modified. */
final class PixelImage {
    private final int[] argb;
    private final int width;
    private final int height;
    private final Bitmap preview;
    private final String description;

    /**
     * @param argb non-premultiplied ARGB_8888 pixels, row-major ({@code argb[y * width + x]},
     *     the layout of {@link Bitmap#getPixels}); not modified afterwards
     * @param width image width in pixels
     * @param height image height in pixels
     * @param preview the same image, displayable
     * @param description where the image came from and its size, for the screen
     */
    PixelImage(int[] argb, int width, int height, Bitmap preview, String description) {
        this.argb = argb;
        this.width = width;
        this.height = height;
        this.preview = preview;
        this.description = description;
    }

    /** @return the pixels, row-major ARGB (shared, do not modify) */
    int[] argb() {
        return argb;
    }

    /** @return width in pixels */
    int width() {
        return width;
    }

    /** @return height in pixels */
    int height() {
        return height;
    }

    /** @return a bitmap of the image for an ImageView */
    Bitmap preview() {
        return preview;
    }

    /** @return source and size, e.g. "photo.jpg, 640×480" */
    String description() {
        return description;
    }
}
