package org.tflbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

public class LatencyStatsTest {
    private static final long MS = 1000000L;

    @Test
    public void oddCountUsesTheMiddleValueAndInterpolatesP90() {
        // Sorted 1..5 ms. numpy.median = 3. numpy.percentile(q=90): rank 0.9 * (5 - 1) = 3.6,
        // between sorted[3] = 4 and sorted[4] = 5: 4 + 0.6 * (5 - 4) = 4.6.
        LatencyStats stats = LatencyStats.fromNanos(new long[] {5 * MS, MS, 4 * MS, 2 * MS,
                3 * MS});
        assertEquals(5, stats.runs());
        assertEquals(3.0, stats.medianMs(), 1e-12);
        assertEquals(4.6, stats.p90Ms(), 1e-12);
        assertEquals(3.0, stats.meanMs(), 1e-12);
        assertEquals(1.0, stats.minMs(), 0);
    }

    @Test
    public void evenCountAveragesTheTwoMiddleValues() {
        // Sorted 10, 20, 30, 40 ms: median (20 + 30) / 2 = 25; p90 rank 0.9 * 3 = 2.7 ->
        // 30 + 0.7 * 10 = 37 (numpy.percentile([10, 20, 30, 40], 90) == 37.0).
        LatencyStats stats = LatencyStats.fromNanos(new long[] {40 * MS, 10 * MS, 30 * MS,
                20 * MS});
        assertEquals(25.0, stats.medianMs(), 1e-12);
        assertEquals(37.0, stats.p90Ms(), 1e-12);
        assertEquals(25.0, stats.meanMs(), 1e-12);
        assertEquals(10.0, stats.minMs(), 0);
    }

    @Test
    public void tenRunsAndSubMillisecondDurations() {
        // 1..10 ms: median 5.5, p90 rank 8.1 -> 9 + 0.1 * 1 = 9.1.
        long[] durations = new long[10];
        for (int i = 0; i < 10; i++) {
            durations[i] = (10 - i) * MS;
        }
        LatencyStats stats = LatencyStats.fromNanos(durations);
        assertEquals(5.5, stats.medianMs(), 1e-12);
        assertEquals(9.1, stats.p90Ms(), 1e-12);
        // 1.5 ms and 0.25 ms: median 0.875, p90 rank 0.9 -> 0.25 + 0.9 * 1.25 = 1.375.
        LatencyStats two = LatencyStats.fromNanos(new long[] {1500000L, 250000L});
        assertEquals(0.875, two.medianMs(), 1e-12);
        assertEquals(1.375, two.p90Ms(), 1e-12);
        assertEquals(0.25, two.minMs(), 0);
    }

    @Test
    public void oneRunIsEveryStatistic() {
        LatencyStats stats = LatencyStats.fromNanos(new long[] {7 * MS});
        assertEquals(1, stats.runs());
        assertEquals(7.0, stats.medianMs(), 0);
        assertEquals(7.0, stats.p90Ms(), 0);
        assertEquals(7.0, stats.meanMs(), 0);
        assertEquals(7.0, stats.minMs(), 0);
    }

    @Test
    public void inputIsNotReordered() {
        long[] durations = {3 * MS, MS, 2 * MS};
        LatencyStats.fromNanos(durations);
        assertEquals(3 * MS, durations[0]);
        assertEquals(MS, durations[1]);
    }

    @Test
    public void noDurationsIsAnError() {
        try {
            LatencyStats.fromNanos(new long[0]);
            fail("summarised no timings");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("no timings"));
        }
    }
}
