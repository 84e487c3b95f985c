package org.tflbnn.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Locale;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;
import org.tflbnn.demo.core.LatencyStats;
import org.tflbnn.demo.core.Preprocessing;

public class ReportTextTest {
    private static final String NL = System.getProperty("line.separator");

    private Locale saved;

    @Before
    public void useACommaLocale() {
        // The texts must not depend on the phone's language: German writes 3,21.
        saved = Locale.getDefault();
        Locale.setDefault(Locale.GERMANY);
    }

    @After
    public void restoreLocale() {
        Locale.setDefault(saved);
    }

    @Test
    public void latencyGivesMedianP90MeanAndMin() {
        LatencyStats stats = LatencyStats.fromNanos(new long[] {3_400_000, 3_100_000, 3_210_000});
        assertEquals("median 3.21 ms, p90 3.36 ms" + NL
                + "3 runs on 2 threads (mean 3.24 ms, min 3.10 ms)",
                ReportText.latency(stats, 2));
    }

    @Test
    public void oneThreadIsSingular() {
        LatencyStats stats = LatencyStats.fromNanos(new long[] {1_000_000, 2_000_000});
        assertEquals("median 1.50 ms, p90 1.90 ms" + NL
                + "2 runs on 1 thread (mean 1.50 ms, min 1.00 ms)", ReportText.latency(stats, 1));
    }

    @Test
    public void oneRunIsSingular() {
        LatencyStats stats = LatencyStats.fromNanos(new long[] {2_500_000});
        assertEquals("median 2.50 ms, p90 2.50 ms" + NL
                + "1 run on 4 threads (mean 2.50 ms, min 2.50 ms)", ReportText.latency(stats, 4));
    }

    @Test
    public void percentHasOneDecimal() {
        assertEquals("97.3 %", ReportText.percent(0.973));
        assertEquals("100.0 %", ReportText.percent(1.0));
        assertEquals("0.0 %", ReportText.percent(0.0));
        assertEquals("12.5 %", ReportText.percent(0.12501));
        assertEquals("0.1 %", ReportText.percent(0.00051));
    }

    @Test
    public void shapeJoinsDimensionsWithTimes() {
        assertEquals("1×28×28×1", ReportText.shape(new int[] {1, 28, 28, 1}));
        assertEquals("10", ReportText.shape(new int[] {10}));
        assertEquals("", ReportText.shape(new int[0]));
    }

    @Test
    public void modelFactsOfTheBundledModel() throws Exception {
        LoadedModel model = AppFiles.bundledModel();
        Preprocessing p = model.metadata().preprocessing();
        long size = AppFiles.file("src/main/assets/" + ModelReader.ASSET_MODEL).length();
        long tenths = Math.round(size * 10 / 1024.0); // KB with one decimal, rounded
        int binaryConvolutions = model.tflite().binaryConvCount();
        assertTrue("the bundled model is a binary network", binaryConvolutions > 0);
        String expected = "name:           " + model.metadata().name() + NL
                + "file:           model.tflite + model.json" + NL
                + "size:           " + tenths / 10 + "." + tenths % 10 + " KB" + NL
                + "LceBconv2d ops: " + binaryConvolutions + NL
                + "input:          1×" + p.height() + "×" + p.width() + "×" + p.channels()
                + " float32" + NL
                + "labels:         " + model.metadata().labels().size();
        assertEquals(expected, ReportText.modelFacts(model));
        assertTrue(expected, expected.startsWith("name:           reactnet"));
    }
}
