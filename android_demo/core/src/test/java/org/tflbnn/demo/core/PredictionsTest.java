package org.tflbnn.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class PredictionsTest {
    private static final List<String> FIVE = Arrays.asList("a", "b", "c", "d", "e");

    @Test
    public void softmaxOfLogitsMatchesHandComputedValues() {
        // exp(1 - 3), exp(2 - 3), exp(0) = 0.1353352832366127, 0.36787944117144233, 1;
        // their sum is 1.5032147244080550.
        double[] p = Predictions.softmaxIfLogits(new float[] {1, 2, 3});
        assertArrayEquals(new double[] {0.09003057317038046, 0.24472847105479764,
                0.6652409557748219}, p, 1e-15);
    }

    @Test
    public void softmaxIsShiftedByTheMaximumSoLargeLogitsDoNotOverflow() {
        assertArrayEquals(new double[] {0.5, 0.5},
                Predictions.softmaxIfLogits(new float[] {1000, 1000}), 0);
        assertArrayEquals(new double[] {0.25, 0.25, 0.25, 0.25},
                Predictions.softmaxIfLogits(new float[] {-7, -7, -7, -7}), 0);
    }

    @Test
    public void distributionsPassThroughUnchanged() {
        // Values as the float32 outputs widen to double, not re-normalised.
        float[] outputs = {0.2f, 0.3f, 0.5f};
        assertArrayEquals(new double[] {0.2f, 0.3f, 0.5f}, Predictions.softmaxIfLogits(outputs),
                0);
        // A sum within 1e-3 of 1 still counts as a distribution.
        float[] almost = {0.2f, 0.3f, 0.4995f};
        assertArrayEquals(new double[] {0.2f, 0.3f, 0.4995f}, Predictions.softmaxIfLogits(almost),
                0);
    }

    @Test
    public void nonDistributionsGetASoftmax() {
        // Sum 0.998: more than 1e-3 from 1, so a softmax is applied (the values change).
        // exp(0.2) / (exp(0.2) + exp(0.3) + exp(0.498)) = 1.2214 / 4.2166 = 0.28966.
        double[] p = Predictions.softmaxIfLogits(new float[] {0.2f, 0.3f, 0.498f});
        assertEquals(0.28966, p[0], 1e-5);
        assertEquals(1.0, p[0] + p[1] + p[2], 1e-12);
        // Negative values never form a distribution, even when they sum to 1.
        double[] q = Predictions.softmaxIfLogits(new float[] {-0.5f, 1.5f});
        // 1 / (1 + exp(2)) = 0.11920292202211755
        assertEquals(0.11920292202211755, q[0], 1e-15);
    }

    @Test
    public void topKIsDescendingWithTiesInIndexOrder() {
        double[] p = {0.1, 0.3, 0.3, 0.2, 0.1};
        List<Prediction> top = Predictions.topK(p, FIVE, 5);
        assertIndices(new int[] {1, 2, 3, 0, 4}, top);
        assertEquals("b", top.get(0).label);
        assertEquals(0.3, top.get(0).probability, 0);
        assertEquals("e", top.get(4).label);
        assertIndices(new int[] {1, 2}, Predictions.topK(p, FIVE, 2));
        assertIndices(new int[] {1}, Predictions.topK(p, FIVE, 1));
    }

    @Test
    public void kLargerThanTheClassCountReturnsEveryClass() {
        double[] p = {0.5, 0.2, 0.3};
        assertIndices(new int[] {0, 2, 1}, Predictions.topK(p, Arrays.asList("x", "y", "z"), 10));
    }

    @Test
    public void nanRanksLast() {
        double[] p = {Double.NaN, 0.1, 0.9};
        assertIndices(new int[] {2, 1, 0}, Predictions.topK(p, Arrays.asList("x", "y", "z"), 3));
    }

    @Test
    public void invalidArgumentsAreRejected() {
        try {
            Predictions.topK(new double[] {1}, Arrays.asList("a"), 0);
            fail("accepted k = 0");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("at least 1"));
        }
        try {
            Predictions.topK(new double[] {0.5, 0.5}, Arrays.asList("a"), 1);
            fail("accepted 1 label for 2 probabilities");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("1 labels for 2 probabilities"));
        }
        try {
            Predictions.softmaxIfLogits(new float[0]);
            fail("accepted no outputs");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("no outputs"));
        }
    }

    private static void assertIndices(int[] expected, List<Prediction> top) {
        int[] actual = new int[top.size()];
        for (int i = 0; i < actual.length; i++) {
            actual[i] = top.get(i).index;
        }
        assertArrayEquals(expected, actual);
    }
}
