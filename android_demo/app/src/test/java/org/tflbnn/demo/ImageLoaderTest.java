package org.tflbnn.demo;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class ImageLoaderTest {

    @Test
    public void imagesUpToTheBoundAreDecodedWhole() {
        assertEquals(2048, ImageLoader.MAX_EXACT_SIDE);
        assertEquals(1, ImageLoader.sampleSize(1, 1));
        assertEquals(1, ImageLoader.sampleSize(28, 28));
        assertEquals(1, ImageLoader.sampleSize(2048, 2048));
        assertEquals(1, ImageLoader.sampleSize(2048, 1));
    }

    @Test
    public void largerImagesAreHalvedUntilBothSidesFit() {
        assertEquals(2, ImageLoader.sampleSize(2049, 10));
        assertEquals(2, ImageLoader.sampleSize(10, 2049));
        assertEquals(2, ImageLoader.sampleSize(4000, 3000));
        assertEquals(2, ImageLoader.sampleSize(4097, 4097)); // 4097 / 2 = 2048 in integers
        assertEquals(4, ImageLoader.sampleSize(4098, 100));
        assertEquals(4, ImageLoader.sampleSize(8000, 6000));
        assertEquals(8, ImageLoader.sampleSize(100, 16384));
        assertEquals(16, ImageLoader.sampleSize(100, 16392));
    }
}
