package org.tflbnn.demo;

import android.content.ClipData;
import android.content.Intent;
import android.net.Uri;
import android.provider.MediaStore;

import java.util.ArrayList;
import java.util.List;

/** The intents that let other apps supply images and models, and reading their answers. */
final class Pickers {

    private Pickers() {
    }

    /** @return an intent for the system image picker (gallery, files, cloud storage) */
    static Intent image() {
        Intent intent = new Intent(Intent.ACTION_GET_CONTENT);
        intent.setType("image/*");
        intent.addCategory(Intent.CATEGORY_OPENABLE);
        return intent;
    }

    /**
     * @return an intent for the camera app. No EXTRA_OUTPUT: the camera returns a thumbnail in
     *     the result's "data" extra, so this app needs neither a camera nor a storage permission.
     */
    static Intent cameraThumbnail() {
        return new Intent(MediaStore.ACTION_IMAGE_CAPTURE);
    }

    /** @return an intent to select a .tflite model and, in the same pick, its .json metadata */
    static Intent modelFiles() {
        Intent intent = anyDocument();
        intent.putExtra(Intent.EXTRA_ALLOW_MULTIPLE, true);
        return intent;
    }

    /** @return an intent to select a model's .json metadata alone */
    static Intent metadataFile() {
        return anyDocument();
    }

    /**
     * @param result a picker's result
     * @return the picked documents: all items of a multiple pick, else the single one
     */
    static List<Uri> pickedUris(Intent result) {
        List<Uri> uris = new ArrayList<Uri>();
        ClipData clip = result.getClipData();
        if (clip != null) {
            for (int i = 0; i < clip.getItemCount(); i++) {
                uris.add(clip.getItemAt(i).getUri());
            }
        } else if (result.getData() != null) {
            uris.add(result.getData());
        }
        return uris;
    }

    private static Intent anyDocument() {
        // Any type: providers label .tflite (and often .json) files inconsistently, so a MIME
        // filter would hide the very files the user looks for.
        Intent intent = new Intent(Intent.ACTION_OPEN_DOCUMENT);
        intent.setType("*/*");
        intent.addCategory(Intent.CATEGORY_OPENABLE);
        return intent;
    }
}
