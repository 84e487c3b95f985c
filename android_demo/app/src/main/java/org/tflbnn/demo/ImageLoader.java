package org.tflbnn.demo;

import android.content.ContentResolver;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;

import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;

/**
 * Decodes images into the ARGB pixels the core preprocessing takes.
 *
 * <p>The metadata's preprocessing rule is bit-exact with Python on the decoded pixels, so
 * decoding keeps them as stored: no scaling (except for huge images, below), no colour
 * premultiplication, alpha ignored later by the rule (Python drops alpha too).
 */
final class ImageLoader {

    /**
     * Longest side decoded at full resolution. The core holds the image as
     * height × width × channels floats, twice (channel conversion, then crop), so a 4000×3000
     * photo would need about 290 MB; above this side the decoder subsamples by powers of two
     * (BitmapFactory inSampleSize). Subsampling changes pixels, so such images are no longer
     * bit-exact with Python's preprocessing of the original file, which is why the bound is
     * well above the inputs of the models this app runs.
     */
    static final int MAX_EXACT_SIDE = 2048;

    private ImageLoader() {
    }

    /**
     * Decodes an image document (JPEG, PNG, WebP, GIF's first frame, ... whatever
     * BitmapFactory reads).
     *
     * @param resolver to open the document
     * @param uri the image
     * @param name its display name, for messages
     * @return the pixels
     * @throws ImageDecodeException if it cannot be read or decoded
     */
    static PixelImage decode(ContentResolver resolver, Uri uri, String name)
            throws ImageDecodeException {
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        decodeStream(resolver, uri, name, bounds);
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw new ImageDecodeException(name + " is not an image this device can decode");
        }
        int sampleSize = sampleSize(bounds.outWidth, bounds.outHeight);

        BitmapFactory.Options options = new BitmapFactory.Options();
        options.inSampleSize = sampleSize;
        options.inPreferredConfig = Bitmap.Config.ARGB_8888;
        // Keep colour values as stored: premultiplying by alpha would round them, while the
        // rule (like Python) ignores alpha and uses the stored RGB.
        options.inPremultiplied = false;
        // Mutable so that a translucent image can be re-stored premultiplied for display.
        options.inMutable = true;
        Bitmap bitmap = decodeStream(resolver, uri, name, options);
        if (bitmap == null) {
            throw new ImageDecodeException(name + " could not be decoded (corrupt or unsupported)");
        }
        String size = bounds.outWidth + "×" + bounds.outHeight;
        String description = sampleSize == 1 ? name + ", " + size
                : String.format(Locale.ROOT, "%s, %s decoded at 1/%d (%d×%d) because a side "
                        + "exceeds %d px; not bit-exact with Python's preprocessing of the "
                        + "full-size image", name, size, sampleSize, bitmap.getWidth(),
                        bitmap.getHeight(), MAX_EXACT_SIDE);
        return fromDecoded(bitmap, description);
    }

    /**
     * Takes the pixels of a bitmap (the camera app's thumbnail).
     *
     * @param bitmap any bitmap
     * @param description where it came from, for the screen
     * @return the pixels
     */
    static PixelImage fromBitmap(Bitmap bitmap, String description) {
        return fromDecoded(bitmap,
                description + ", " + bitmap.getWidth() + "×" + bitmap.getHeight());
    }

    /** Largest power of two that brings both sides to at most {@link #MAX_EXACT_SIDE}, or 1. */
    static int sampleSize(int width, int height) {
        int sample = 1;
        while (width / sample > MAX_EXACT_SIDE || height / sample > MAX_EXACT_SIDE) {
            sample *= 2;
        }
        return sample;
    }

    private static PixelImage fromDecoded(Bitmap decoded, String description) {
        Bitmap bitmap = decoded;
        if (bitmap.getConfig() != Bitmap.Config.ARGB_8888) {
            // Other configs (RGB_565 thumbnails, hardware bitmaps that getPixels cannot read)
            // become the 8-bit-per-channel layout the rule is defined on.
            bitmap = decoded.copy(Bitmap.Config.ARGB_8888, true);
        }
        int width = bitmap.getWidth();
        int height = bitmap.getHeight();
        int[] argb = new int[width * height];
        // getPixels returns non-premultiplied colours in any case.
        bitmap.getPixels(argb, 0, width, 0, 0, width, height);
        if (!bitmap.isPremultiplied() && bitmap.hasAlpha()) {
            // Views refuse to draw non-premultiplied bitmaps with alpha. Flag it premultiplied
            // and write the pixels again: setPixels premultiplies them on the way in.
            bitmap.setPremultiplied(true);
            bitmap.setPixels(argb, 0, width, 0, 0, width, height);
        }
        return new PixelImage(argb, width, height, bitmap, description);
    }

    private static Bitmap decodeStream(ContentResolver resolver, Uri uri, String name,
            BitmapFactory.Options options) throws ImageDecodeException {
        InputStream stream = null;
        try {
            stream = resolver.openInputStream(uri);
            if (stream == null) {
                throw new ImageDecodeException("cannot open " + name
                        + ": the provider returned nothing");
            }
            return BitmapFactory.decodeStream(stream, null, options);
        } catch (IOException failed) {
            throw new ImageDecodeException("cannot read " + name + ": " + failed.getMessage());
        } catch (SecurityException denied) {
            throw new ImageDecodeException("no permission to read " + name + ": "
                    + denied.getMessage());
        } finally {
            closeQuietly(stream);
        }
    }

    private static void closeQuietly(InputStream stream) {
        if (stream == null) {
            return;
        }
        try {
            stream.close();
        } catch (IOException ignored) {
            // Everything needed was read; a failing close changes nothing for the user.
        }
    }
}
