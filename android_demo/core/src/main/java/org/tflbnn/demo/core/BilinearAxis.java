package org.tflbnn.demo.core;

/**
 * The source positions of one axis of a bilinear resize with half-pixel centres and no
 * antialiasing, computed exactly as TensorFlow's {@code tf.image.resize(method="bilinear")}
 * computes them in float32 (so the app's input matches Python's bit for bit).
 */
final class BilinearAxis {
    /** For each output index, the lower source index (clamped to 0). */
    final int[] lower;
    /** For each output index, the upper source index (clamped to the last index). */
    final int[] upper;
    /** For each output index, the weight of the upper source value. */
    final float[] lerp;

    /**
     * @param inSize source size along the axis, positive
     * @param outSize output size along the axis, positive
     */
    BilinearAxis(int inSize, int outSize) {
        if (inSize <= 0 || outSize <= 0) {
            throw new IllegalArgumentException("resize sizes must be positive, got " + inSize
                    + " -> " + outSize);
        }
        lower = new int[outSize];
        upper = new int[outSize];
        lerp = new float[outSize];
        float scale = (float) inSize / (float) outSize;
        for (int i = 0; i < outSize; i++) {
            float x = ((float) i + 0.5f) * scale - 0.5f;
            float xFloor = (float) Math.floor(x);
            lower[i] = Math.max((int) xFloor, 0);
            upper[i] = Math.min((int) Math.ceil(x), inSize - 1);
            lerp[i] = x - xFloor;
        }
    }

    /**
     * TensorFlow's interpolation order: along x on both rows, then along y. With equal in and out
     * sizes every lerp is 0 and lower == upper, so the result is exactly {@code topLeft}.
     */
    static float interpolate(float topLeft, float topRight, float bottomLeft, float bottomRight,
                             float xLerp, float yLerp) {
        float top = topLeft + (topRight - topLeft) * xLerp;
        float bottom = bottomLeft + (bottomRight - bottomLeft) * xLerp;
        return top + (bottom - top) * yLerp;
    }
}
