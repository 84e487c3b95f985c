package org.tflbnn.demo;

import android.widget.LinearLayout;
import android.widget.ProgressBar;
import android.widget.TextView;

import org.tflbnn.demo.core.Prediction;

import java.util.List;

/** Shows predictions as rows of "label  percentage" over a bar proportional to the probability. */
final class PredictionRows {

    /** Bar resolution: tenths of a percent. */
    private static final int BAR_MAX = 1000;

    private PredictionRows() {
    }

    /**
     * Replaces the rows in {@code container}.
     *
     * @param container a vertical LinearLayout
     * @param predictions best first
     */
    static void show(LinearLayout container, List<Prediction> predictions) {
        container.removeAllViews();
        for (Prediction prediction : predictions) {
            TextView text = new TextView(container.getContext());
            text.setText(prediction.label + "  " + ReportText.percent(prediction.probability));
            container.addView(text);

            // The three-argument constructor is how a horizontal bar is made without XML.
            ProgressBar bar = new ProgressBar(container.getContext(), null,
                    android.R.attr.progressBarStyleHorizontal);
            bar.setMax(BAR_MAX);
            bar.setProgress((int) Math.round(prediction.probability * BAR_MAX));
            container.addView(bar, new LinearLayout.LayoutParams(
                    LinearLayout.LayoutParams.MATCH_PARENT,
                    LinearLayout.LayoutParams.WRAP_CONTENT));
        }
    }

    /**
     * Removes all rows.
     *
     * @param container the rows' LinearLayout
     */
    static void clear(LinearLayout container) {
        container.removeAllViews();
    }
}
