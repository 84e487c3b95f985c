package org.tflbnn.demo;

import org.tflbnn.demo.core.LatencyStats;
import org.tflbnn.demo.core.TfliteModel;

import java.util.Locale;

/** The texts of the latency and model panels. */
final class ReportText {

    private ReportText() {
    }

    /**
     * @param latency timings of the runs
     * @param threads interpreter threads used
     * @return e.g. "median 3.21 ms, p90 3.40 ms\n20 runs on 2 threads (mean 3.25 ms, min 3.10 ms)"
     */
    static String latency(LatencyStats latency, int threads) {
        return String.format(Locale.ROOT, "median %.2f ms, p90 %.2f ms%n%d run%s on %d thread%s "
                + "(mean %.2f ms, min %.2f ms)", latency.medianMs(), latency.p90Ms(),
                latency.runs(), latency.runs() == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
                latency.meanMs(), latency.minMs());
    }

    /**
     * @param model a loaded model
     * @return its facts, one per line: name, files, size, binary convolutions, input, labels
     */
    static String modelFacts(LoadedModel model) {
        TfliteModel tflite = model.tflite();
        StringBuilder text = new StringBuilder();
        line(text, "name", model.metadata().name());
        line(text, "file", model.fileName() + " + " + model.metadataFileName());
        line(text, "size", String.format(Locale.ROOT, "%.1f KB", tflite.sizeBytes() / 1024.0));
        line(text, "LceBconv2d ops", Integer.toString(tflite.binaryConvCount()));
        line(text, "input", shape(tflite.inputShape()) + " " + tflite.inputType());
        line(text, "labels", Integer.toString(model.metadata().labels().size()));
        text.setLength(text.length() - 1);
        return text.toString();
    }

    /**
     * @param probability in [0, 1]
     * @return e.g. "97.3 %"
     */
    static String percent(double probability) {
        return String.format(Locale.ROOT, "%.1f %%", probability * 100.0);
    }

    /**
     * @param shape tensor dimensions
     * @return e.g. "1×28×28×1"
     */
    static String shape(int[] shape) {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < shape.length; i++) {
            if (i > 0) {
                text.append('×');
            }
            text.append(shape[i]);
        }
        return text.toString();
    }

    private static void line(StringBuilder text, String key, String value) {
        text.append(String.format(Locale.ROOT, "%-15s %s%n", key + ":", value));
    }
}
