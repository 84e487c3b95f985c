package org.tflbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.Test;

public class ImagePreprocessorTest {
    private static final double[] ZERO = {0};
    private static final double[] ONE = {1};

    private static int argb(int alpha, int red, int green, int blue) {
        return (alpha << 24) | (red << 16) | (green << 8) | blue;
    }

    @Test
    public void greyPixelsKeepTheirLevelForAll256Levels() {
        int[] image = new int[256];
        for (int level = 0; level < 256; level++) {
            assertEquals("level " + level, level, ImagePreprocessor.greyLevel(level, level, level));
            image[level] = argb(255, level, level, level);
        }
        float[] grey = ImagePreprocessor.toChannels(image, 16, 16, 1);
        for (int level = 0; level < 256; level++) {
            assertEquals(level, grey[level], 0);
        }
    }

    @Test
    public void greyOfPureColoursTruncatesLikeTensorFlow() {
        // float32 luma * 255.5, worked out with numpy float32 (and tf.image.rgb_to_grayscale):
        // red 76.369 -> 76, green 149.979 -> 149 (truncated, not rounded to 150),
        // blue 29.127 -> 29, white 255.474 -> 255, (10, 200, 30) 124.052 -> 124.
        assertEquals(76, ImagePreprocessor.greyLevel(255, 0, 0));
        assertEquals(149, ImagePreprocessor.greyLevel(0, 255, 0));
        assertEquals(29, ImagePreprocessor.greyLevel(0, 0, 255));
        assertEquals(255, ImagePreprocessor.greyLevel(255, 255, 255));
        assertEquals(124, ImagePreprocessor.greyLevel(10, 200, 30));
        assertEquals(0, ImagePreprocessor.greyLevel(0, 0, 0));
    }

    @Test
    public void rgbChannelsComeFromTheArgbBytesAndAlphaIsIgnored() {
        int[] image = {argb(0x80, 0x11, 0x22, 0x33), argb(0, 0xff, 0x00, 0x7f)};
        assertArrayEquals(new float[] {0x11, 0x22, 0x33, 0xff, 0x00, 0x7f},
                ImagePreprocessor.toChannels(image, 2, 1, 3), 0);
        assertArrayEquals(new float[] {ImagePreprocessor.greyLevel(0x11, 0x22, 0x33),
                ImagePreprocessor.greyLevel(0xff, 0, 0x7f)},
                ImagePreprocessor.toChannels(image, 1, 2, 1), 0);
    }

    @Test
    public void centerCropBoxesMatchHandComputedValues() {
        // 224 * 0.875 = 196 kept, (224 - 196) / 2 = 14 on each side.
        assertArrayEquals(new int[] {14, 14, 196, 196},
                ImagePreprocessor.centerCropBox(224, 224, 0.875));
        // Odd sides: 7 * 0.5 + 0.5 = 4 kept, offset (7 - 4) / 2 = 1 (the spare pixel goes after);
        // 5 * 0.5 + 0.5 = 3 kept, offset 1.
        assertArrayEquals(new int[] {1, 1, 4, 3}, ImagePreprocessor.centerCropBox(7, 5, 0.5));
        // x.5 rounds up: 3 * 0.5 + 0.5 = 2.0 -> 2 kept, offset 0; 9 * 0.5 + 0.5 = 5 -> offset 2.
        assertArrayEquals(new int[] {0, 2, 2, 5}, ImagePreprocessor.centerCropBox(3, 9, 0.5));
        // 32 * 0.6 + 0.5 = 19.7 -> 19 kept, offset 6; 512 * 0.6 + 0.5 = 307.7 -> 307, offset 102.
        assertArrayEquals(new int[] {6, 102, 19, 307},
                ImagePreprocessor.centerCropBox(32, 512, 0.6));
        // A tiny fraction still keeps one pixel, in the middle: (224 - 1) / 2 = 111.
        assertArrayEquals(new int[] {111, 3, 1, 1},
                ImagePreprocessor.centerCropBox(224, 7, 1e-9));
        assertArrayEquals(new int[] {0, 0, 480, 640},
                ImagePreprocessor.centerCropBox(480, 640, 1.0));
    }

    @Test
    public void centerCropRejectsInvalidArguments() {
        for (double fraction : new double[] {0, -0.5, 1.01, Double.NaN}) {
            try {
                ImagePreprocessor.centerCropBox(10, 10, fraction);
                fail("accepted fraction " + fraction);
            } catch (IllegalArgumentException expected) {
                assertTrue(expected.getMessage().contains("center_crop"));
            }
        }
        try {
            ImagePreprocessor.centerCropBox(0, 10, 0.5);
            fail("accepted an empty image");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("positive"));
        }
    }

    @Test
    public void cropCutsTheBoxOutOfAnHwcTensor() {
        // 3x4, 2 channels: pixel (y, x) holds (10y + x, -(10y + x)).
        float[] pixels = new float[3 * 4 * 2];
        for (int y = 0; y < 3; y++) {
            for (int x = 0; x < 4; x++) {
                pixels[(y * 4 + x) * 2] = 10 * y + x;
                pixels[(y * 4 + x) * 2 + 1] = -(10 * y + x);
            }
        }
        assertArrayEquals(new float[] {11, -11, 12, -12, 21, -21, 22, -22},
                ImagePreprocessor.crop(pixels, 3, 4, 2, new int[] {1, 1, 2, 2}), 0);
        assertArrayEquals(new float[] {3, -3, 13, -13, 23, -23},
                ImagePreprocessor.crop(pixels, 3, 4, 2, new int[] {0, 3, 3, 1}), 0);
        try {
            ImagePreprocessor.crop(pixels, 3, 4, 2, new int[] {2, 0, 2, 1});
            fail("accepted a box below the image");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("not inside"));
        }
    }

    @Test
    public void resizeToTheSameSizeIsTheIdentity() {
        Random random = new Random(1);
        float[] pixels = new float[5 * 7 * 3];
        for (int i = 0; i < pixels.length; i++) {
            pixels[i] = random.nextInt(256);
        }
        assertArrayEquals(pixels, ImagePreprocessor.resizeBilinear(pixels, 5, 7, 3, 5, 7), 0);
    }

    @Test
    public void upsizing2x2To4x4MatchesHandComputedValues() {
        // in = [[0, 10], [20, 30]]; scale = 2 / 4 = 0.5; source x of output i is
        // (i + 0.5) * 0.5 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]:
        //   i=0: lower 0, upper 0            -> column 0
        //   i=1: lower 0, upper 1, lerp 0.25 -> 0.75 * c0 + 0.25 * c1
        //   i=2: lower 0, upper 1, lerp 0.75 -> 0.25 * c0 + 0.75 * c1
        //   i=3: lower 1, upper 1            -> column 1
        // Row 0 becomes 0, 2.5, 7.5, 10; row 1 becomes 20, 22.5, 27.5, 30; rows mix the same way.
        float[] in = {0, 10, 20, 30};
        float[] expected = {
            0, 2.5f, 7.5f, 10,
            5, 7.5f, 12.5f, 15,
            15, 17.5f, 22.5f, 25,
            20, 22.5f, 27.5f, 30,
        };
        assertArrayEquals(expected, ImagePreprocessor.resizeBilinear(in, 2, 2, 1, 4, 4), 0);
    }

    @Test
    public void downsizingSamplesWithoutAntialiasing() {
        // 4 -> 2: scale 2, source x = 0.5 and 2.5: the mean of pixels 0,1 and of 2,3; pixels
        // are not averaged over the whole 2-pixel footprint beyond that (no antialias).
        assertArrayEquals(new float[] {5, 30},
                ImagePreprocessor.resizeBilinear(new float[] {0, 10, 20, 40}, 1, 4, 1, 1, 2), 0);
        // 3 -> 2: scale 1.5, source x = 0.25 (0.75 * 0 + 0.25 * 4 = 1) and
        // 1.75 (0.25 * 4 + 0.75 * 8 = 7).
        assertArrayEquals(new float[] {1, 7},
                ImagePreprocessor.resizeBilinear(new float[] {0, 4, 8}, 3, 1, 1, 2, 1), 0);
    }

    @Test
    public void resizeKeepsChannelsApart() {
        // 1x2 RGB -> 1x4: each channel interpolates on its own (weights as in the 2x2 test).
        float[] in = {0, 100, 200, 8, 104, 40};
        float[] expected = {0, 100, 200, 2, 101, 160, 6, 103, 80, 8, 104, 40};
        assertArrayEquals(expected, ImagePreprocessor.resizeBilinear(in, 1, 2, 3, 1, 4), 0);
    }

    @Test
    public void normalisationUsesMeanAndStdPerChannel() {
        Preprocessing grey = new Preprocessing(1, 3, 1, new double[] {0.5}, new double[] {0.25},
                1);
        float[] values = {255, 0, 51};
        ImagePreprocessor.normalizeInPlace(values, grey);
        // (1 - 0.5) / 0.25 = 2; (0 - 0.5) / 0.25 = -2; (0.2 - 0.5) / 0.25 = -1.2.
        assertArrayEquals(new float[] {2, -2, -1.2f}, values, 1e-6f);

        Preprocessing rgb = new Preprocessing(1, 2, 3, new double[] {0.485, 0.456, 0.406},
                new double[] {0.229, 0.224, 0.225}, 1);
        float[] pixels = {255, 0, 255, 0, 255, 0};
        ImagePreprocessor.normalizeInPlace(pixels, rgb);
        float[] expected = {
            (float) ((1 - 0.485) / 0.229), (float) ((0 - 0.456) / 0.224),
            (float) ((1 - 0.406) / 0.225), (float) ((0 - 0.485) / 0.229),
            (float) ((1 - 0.456) / 0.224), (float) ((0 - 0.406) / 0.225),
        };
        assertArrayEquals(expected, pixels, 1e-6f);
    }

    @Test
    public void preprocessCropsWithoutResizingWhenTheCropHasTheTargetSize() {
        // 4x4 grey image with levels 0..15 times 10; a 0.5 crop keeps the centre 2x2
        // (rows and columns 1..2), which is already the 2x2 target; mean 0, std 1 leaves v / 255.
        int[] image = new int[16];
        for (int i = 0; i < 16; i++) {
            image[i] = argb(255, 10 * i, 10 * i, 10 * i);
        }
        Preprocessing p = new Preprocessing(2, 2, 1, ZERO, ONE, 0.5);
        assertArrayEquals(new float[] {50 / 255f, 60 / 255f, 90 / 255f, 100 / 255f},
                ImagePreprocessor.preprocess(image, 4, 4, p), 0);
    }

    @Test
    public void preprocessEqualsTheFourStepsInOrder() {
        Random random = new Random(7);
        Preprocessing[] rules = {
            new Preprocessing(28, 28, 1, new double[] {0.286}, new double[] {0.353}, 1.0),
            new Preprocessing(8, 6, 3, new double[] {0.485, 0.456, 0.406},
                    new double[] {0.229, 0.224, 0.225}, 0.875),
            new Preprocessing(40, 48, 3, new double[] {0.5, 0.5, 0.5},
                    new double[] {0.25, 0.25, 0.25}, 1.0),
            new Preprocessing(5, 9, 1, new double[] {0.5}, new double[] {0.25}, 0.6),
        };
        int[][] sizes = {{28, 28}, {31, 17}, {13, 64}, {1, 1}, {2, 3}};
        for (Preprocessing p : rules) {
            for (int[] size : sizes) {
                int width = size[0];
                int height = size[1];
                int[] image = new int[width * height];
                for (int i = 0; i < image.length; i++) {
                    image[i] = random.nextInt();
                }
                float[] expected = stepByStep(image, width, height, p);
                float[] actual = ImagePreprocessor.preprocess(image, width, height, p);
                assertEquals(p.inputLength(), actual.length);
                for (int i = 0; i < expected.length; i++) {
                    assertEquals(p + " on " + width + "x" + height + " at " + i,
                            Float.floatToIntBits(expected[i]), Float.floatToIntBits(actual[i]));
                }
            }
        }
    }

    private static float[] stepByStep(int[] image, int width, int height, Preprocessing p) {
        float[] pixels = ImagePreprocessor.toChannels(image, width, height, p.channels());
        int[] box = ImagePreprocessor.centerCropBox(height, width, p.centerCrop());
        pixels = ImagePreprocessor.crop(pixels, height, width, p.channels(), box);
        if (box[2] != p.height() || box[3] != p.width()) {
            pixels = ImagePreprocessor.resizeBilinear(pixels, box[2], box[3], p.channels(),
                    p.height(), p.width());
        }
        ImagePreprocessor.normalizeInPlace(pixels, p);
        return pixels;
    }

    @Test
    public void preprocessRejectsAnImageOfTheWrongSize() {
        Preprocessing p = new Preprocessing(2, 2, 1, ZERO, ONE, 1);
        try {
            ImagePreprocessor.preprocess(new int[5], 2, 2, p);
            fail("accepted 5 pixels for 2x2");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("needs 4 pixels, got 5"));
        }
        try {
            ImagePreprocessor.preprocess(new int[0], 0, 0, p);
            fail("accepted an empty image");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("positive"));
        }
    }

    @Test
    public void inputBufferIsDirectNativeOrderFloats() {
        float[] tensor = {1.5f, -2f, 0.25f};
        ByteBuffer buffer = ImagePreprocessor.toInputBuffer(tensor);
        assertTrue(buffer.isDirect());
        assertEquals(ByteOrder.nativeOrder(), buffer.order());
        assertEquals(0, buffer.position());
        assertEquals(12, buffer.limit());
        assertEquals(1.5f, buffer.getFloat(0), 0);
        assertEquals(-2f, buffer.getFloat(4), 0);
        assertEquals(0.25f, buffer.getFloat(8), 0);
    }
}
