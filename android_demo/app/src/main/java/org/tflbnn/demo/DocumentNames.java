package org.tflbnn.demo;

import android.content.ContentResolver;
import android.database.Cursor;
import android.net.Uri;
import android.provider.OpenableColumns;

/** Display names of picked documents, for messages and for telling .tflite from .json. */
final class DocumentNames {

    private DocumentNames() {
    }

    /**
     * The name the document provider shows for a document.
     *
     * @param resolver to query the provider
     * @param uri the document
     * @return its display name, or the last segment of the URI when the provider has none
     */
    static String displayName(ContentResolver resolver, Uri uri) {
        Cursor cursor = null;
        try {
            cursor = resolver.query(uri, new String[] {OpenableColumns.DISPLAY_NAME}, null, null,
                    null);
            if (cursor != null && cursor.moveToFirst() && !cursor.isNull(0)) {
                return cursor.getString(0);
            }
        } catch (RuntimeException providerFailed) {
            // Some providers throw on queries (SecurityException, IllegalArgumentException);
            // the name is only used for messages and the .json test, so fall back.
        } finally {
            if (cursor != null) {
                cursor.close();
            }
        }
        String segment = uri.getLastPathSegment();
        return segment != null ? segment : uri.toString();
    }
}
