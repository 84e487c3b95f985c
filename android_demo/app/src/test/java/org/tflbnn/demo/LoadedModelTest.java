package org.tflbnn.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotSame;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.Before;
import org.junit.Test;

public class LoadedModelTest {
    private LoadedModel bundled;
    private ByteBuffer stored;
    private LoadedModel model;

    @Before
    public void setUp() throws Exception {
        bundled = AppFiles.bundledModel();
        // A stored buffer that is big-endian (ByteBuffer's default) and not at position 0, so
        // that bytes() has to set both.
        stored = ByteBuffer.allocateDirect(16);
        for (int i = 0; i < 16; i++) {
            stored.put((byte) (i * 17));
        }
        stored.position(7);
        model = new LoadedModel("m.tflite", "m.json", stored, bundled.tflite(),
                bundled.metadata());
    }

    @Test
    public void gettersReturnWhatWasGiven() {
        assertEquals("m.tflite", model.fileName());
        assertEquals("m.json", model.metadataFileName());
        assertSame(bundled.tflite(), model.tflite());
        assertSame(bundled.metadata(), model.metadata());
    }

    @Test
    public void bytesAreDirectNativeOrderAtPositionZero() {
        // On the little-endian machines that run these tests native order is not ByteBuffer's
        // big-endian default; the TFLite Interpreter rejects a direct buffer in the wrong order.
        assertEquals(ByteOrder.LITTLE_ENDIAN, ByteOrder.nativeOrder());
        ByteBuffer view = model.bytes();
        assertTrue(view.isDirect());
        assertEquals(ByteOrder.nativeOrder(), view.order());
        assertEquals(0, view.position());
        assertEquals(16, view.limit());
        assertEquals(16, view.capacity());
        for (int i = 0; i < 16; i++) {
            assertEquals((byte) (i * 17), view.get(i));
        }
        // Native (little-endian) order: the first int is bytes 0..3 read from the low end.
        assertEquals(0x33221100, view.getInt(0));
    }

    @Test
    public void viewsHaveIndependentPositions() {
        ByteBuffer first = model.bytes();
        first.getLong();
        ByteBuffer second = model.bytes();
        assertNotSame(first, second);
        assertEquals(0, second.position());
        assertEquals(8, first.position());
        second.getInt();
        assertEquals(8, first.position());
        assertEquals(4, second.position());
        assertEquals(7, stored.position());
    }

    @Test
    public void viewsShareTheStoredBytes() {
        // A view, not a copy: the Interpreter keeps reading the weights from it.
        stored.put(3, (byte) 99);
        assertEquals(99, model.bytes().get(3));
    }

    @Test
    public void bundledModelBytesAreTheFile() throws Exception {
        byte[] file = AppFiles.asset(ModelReader.ASSET_MODEL);
        ByteBuffer view = bundled.bytes();
        assertEquals(file.length, view.remaining());
        for (int i = 0; i < file.length; i++) {
            if (file[i] != view.get(i)) {
                throw new AssertionError("byte " + i + " differs");
            }
        }
    }
}
