package org.tflbnn.demo;

import static org.junit.Assert.assertEquals;

import java.io.FileNotFoundException;
import org.junit.Test;

public class ErrorMessagesTest {

    @Test
    public void appExceptionsAreShownAsWritten() {
        assertEquals("net.json: labels is missing",
                ErrorMessages.describe(new ModelLoadException("net.json: labels is missing")));
        assertEquals("cat.png could not be decoded", ErrorMessages.describe(
                new ImageDecodeException("cat.png could not be decoded")));
        assertEquals(RuntimeLoader.NOT_BUILT_IN, ErrorMessages.describe(
                new RuntimeUnavailableException(RuntimeLoader.NOT_BUILT_IN)));
    }

    @Test
    public void workerWrappersAreShownAsWritten() {
        assertEquals("not enough memory for this task (Java heap space)",
                ErrorMessages.describe(new Exception(
                        "not enough memory for this task (Java heap space)")));
    }

    @Test
    public void otherExceptionsArePrefixedWithTheirType() {
        assertEquals("IllegalArgumentException: Cannot copy to a TensorFlowLite tensor",
                ErrorMessages.describe(new IllegalArgumentException(
                        "Cannot copy to a TensorFlowLite tensor")));
        assertEquals("FileNotFoundException: x.png", ErrorMessages.describe(
                new FileNotFoundException("x.png")));
        // A subclass of Exception is not the worker's plain wrapper.
        assertEquals("IllegalStateException: no model is loaded",
                ErrorMessages.describe(new IllegalStateException("no model is loaded")));
    }

    @Test
    public void exceptionWithoutAMessageShowsItsType() {
        assertEquals("NullPointerException", ErrorMessages.describe(new NullPointerException()));
    }
}
