package org.tflbnn.demo.core;

import java.util.Arrays;
import java.util.Locale;

/**
 * Summary of repeated inference timings, in milliseconds. Median and 90th percentile follow
 * {@code numpy.median} and {@code numpy.percentile(..., 90)} (linear interpolation between the
 * two nearest sorted values), like the host-side {@code tflbnn bench}.
 */
public final class LatencyStats {
    private static final double NANOS_PER_MS = 1e6;

    private final int runs;
    private final double medianMs;
    private final double p90Ms;
    private final double meanMs;
    private final double minMs;

    private LatencyStats(int runs, double medianMs, double p90Ms, double meanMs, double minMs) {
        this.runs = runs;
        this.medianMs = medianMs;
        this.p90Ms = p90Ms;
        this.meanMs = meanMs;
        this.minMs = minMs;
    }

    /**
     * @param durationsNanos one duration per run, in nanoseconds (e.g. differences of
     *     {@code System.nanoTime()}); not modified
     * @return the summary
     * @throws IllegalArgumentException if there are no durations
     */
    public static LatencyStats fromNanos(long[] durationsNanos) {
        if (durationsNanos.length == 0) {
            throw new IllegalArgumentException("no timings to summarise");
        }
        double[] sorted = new double[durationsNanos.length];
        double sum = 0;
        for (int i = 0; i < durationsNanos.length; i++) {
            sorted[i] = durationsNanos[i] / NANOS_PER_MS;
            sum += sorted[i];
        }
        Arrays.sort(sorted);
        int n = sorted.length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        return new LatencyStats(n, median, percentile(sorted, 90), sum / n, sorted[0]);
    }

    /** numpy's default ("linear") percentile of sorted values: rank q/100 * (n - 1). */
    private static double percentile(double[] sorted, double q) {
        double rank = q / 100 * (sorted.length - 1);
        int below = (int) Math.floor(rank);
        int above = Math.min(below + 1, sorted.length - 1);
        double fraction = rank - below;
        double low = sorted[below];
        double high = sorted[above];
        // numpy's lerp: from the nearer end, so the result stays within [low, high].
        return fraction >= 0.5 ? high - (high - low) * (1 - fraction)
                : low + (high - low) * fraction;
    }

    /** @return the number of timed runs */
    public int runs() {
        return runs;
    }

    /** @return the median duration in milliseconds */
    public double medianMs() {
        return medianMs;
    }

    /** @return the 90th percentile duration in milliseconds (linear interpolation) */
    public double p90Ms() {
        return p90Ms;
    }

    /** @return the mean duration in milliseconds */
    public double meanMs() {
        return meanMs;
    }

    /** @return the shortest duration in milliseconds */
    public double minMs() {
        return minMs;
    }

    /** @return e.g. {@code "median 3.21 ms, p90 3.40 ms, mean 3.25 ms, min 3.10 ms (20 runs)"} */
    @Override
    public String toString() {
        return String.format(Locale.ROOT, "median %.2f ms, p90 %.2f ms, mean %.2f ms, min %.2f ms"
                + " (%d runs)", medianMs, p90Ms, meanMs, minMs, runs);
    }
}
