package org.tflbnn.demo.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.util.List;

/** Reads the files under src/test/resources/org/tflbnn/demo/core/. */
final class TestResources {
    static final Charset UTF_8 = Charset.forName("UTF-8");

    private TestResources() {
    }

    /** The bytes of a resource next to the test classes; fails if it is missing. */
    static byte[] bytes(String name) throws IOException {
        InputStream in = TestResources.class.getResourceAsStream(name);
        if (in == null) {
            throw new IOException("test resource " + name + " not found on the class path (is "
                    + "core/src/test/resources on it?)");
        }
        try {
            return readAll(in);
        } finally {
            in.close();
        }
    }

    /** A resource decoded as UTF-8. */
    static String text(String name) throws IOException {
        return new String(bytes(name), UTF_8);
    }

    static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] chunk = new byte[8192];
        int read;
        while ((read = in.read(chunk)) > 0) {
            out.write(chunk, 0, read);
        }
        return out.toByteArray();
    }

    /** A JSON array of numbers (as parsed by Json: Longs or Doubles) as ints, e.g. a shape. */
    static int[] ints(Object list) {
        List<?> values = (List<?>) list;
        int[] out = new int[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) values.get(i)).intValue();
        }
        return out;
    }
}
