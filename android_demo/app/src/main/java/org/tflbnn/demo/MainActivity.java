package org.tflbnn.demo;

import android.app.Activity;
import android.content.ActivityNotFoundException;
import android.content.Intent;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Bundle;
import android.view.View;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.EditText;
import android.widget.ImageView;
import android.widget.LinearLayout;
import android.widget.Spinner;
import android.widget.TextView;

import org.tflbnn.demo.core.ClassificationResult;

import java.util.ArrayList;
import java.util.List;

/**
 * The app's one screen: pick an image (gallery or camera thumbnail) and a model, classify the
 * image several times, and show the top-5 labels, the latency and the model's facts.
 *
 * <p>Everything slow runs on a {@link BackgroundWorker}; the fields here are only touched on
 * the main thread, the {@link ClassifierSession} only on the worker thread.
 */
public final class MainActivity extends Activity {

    private static final int REQUEST_IMAGE = 1;
    private static final int REQUEST_PHOTO = 2;
    private static final int REQUEST_MODEL = 3;
    private static final int REQUEST_METADATA = 4;

    private static final int[] THREAD_CHOICES = {1, 2, 4};
    private static final int DEFAULT_RUNS = 20;
    private static final int MAX_RUNS = 1000;
    private static final int ERROR_COLOR = 0xFFB00020;

    private final BackgroundWorker worker = new BackgroundWorker();
    private final ClassifierSession session = new ClassifierSession();

    private Button[] actionButtons;
    private Spinner threadsSpinner;
    private EditText runsEdit;
    private TextView statusText;
    private int statusDefaultColor;
    private ImageView imageView;
    private TextView imageText;
    private LinearLayout predictionList;
    private TextView latencyText;
    private TextView modelText;

    /** The model shown in the model panel; null until one loaded. */
    private LoadedModel model;
    private PixelImage image;
    /** A model picked alone, waiting for its metadata pick. */
    private ModelSelection modelAwaitingMetadata;
    private int tasksRunning;

    /**
     * Builds the screen and starts loading the bundled model.
     *
     * @param savedInstanceState unused: the manifest keeps the activity across rotations
     */
    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        findViews();
        setUpControls();
        loadModel(getString(R.string.loading_model, "assets/" + ModelReader.ASSET_MODEL),
                new BackgroundWorker.Task<LoadedModel>() {
                    @Override
                    public LoadedModel run() throws ModelLoadException {
                        return ModelReader.fromAssets(getAssets());
                    }
                });
    }

    /** Releases the interpreter after any queued task and stops delivering results. */
    @Override
    protected void onDestroy() {
        worker.execute(new Runnable() {
            @Override
            public void run() {
                session.close();
            }
        });
        worker.shutdown();
        super.onDestroy();
    }

    /**
     * Receives the picked image, camera thumbnail, model or metadata.
     *
     * @param requestCode which picker
     * @param resultCode RESULT_OK when something was picked
     * @param data the pick
     */
    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (resultCode != RESULT_OK || data == null) {
            if (requestCode == REQUEST_PHOTO && resultCode == RESULT_OK) {
                showError(getString(R.string.camera_no_image));
            } else if (requestCode == REQUEST_METADATA) {
                modelAwaitingMetadata = null;
                showStatus(getString(R.string.ready));
            }
            return;
        }
        switch (requestCode) {
            case REQUEST_IMAGE:
                if (data.getData() != null) {
                    loadImage(data.getData());
                }
                break;
            case REQUEST_PHOTO:
                Bitmap thumbnail = data.getParcelableExtra("data");
                if (thumbnail == null) {
                    showError(getString(R.string.camera_no_image));
                } else {
                    loadThumbnail(thumbnail);
                }
                break;
            case REQUEST_MODEL:
                onModelPicked(Pickers.pickedUris(data));
                break;
            case REQUEST_METADATA:
                if (modelAwaitingMetadata == null) {
                    // Android ended the app while the picker was open and forgot the model.
                    showError(getString(R.string.model_pick_lost));
                } else if (data.getData() != null) {
                    onMetadataPicked(modelAwaitingMetadata, data.getData());
                }
                modelAwaitingMetadata = null;
                break;
            default:
                break;
        }
    }

    private void findViews() {
        actionButtons = new Button[] {
            (Button) findViewById(R.id.button_gallery),
            (Button) findViewById(R.id.button_camera),
            (Button) findViewById(R.id.button_open_model),
            (Button) findViewById(R.id.button_classify),
        };
        threadsSpinner = (Spinner) findViewById(R.id.spinner_threads);
        runsEdit = (EditText) findViewById(R.id.edit_runs);
        statusText = (TextView) findViewById(R.id.text_status);
        statusDefaultColor = statusText.getCurrentTextColor();
        imageView = (ImageView) findViewById(R.id.image_input);
        imageText = (TextView) findViewById(R.id.text_image);
        predictionList = (LinearLayout) findViewById(R.id.list_predictions);
        latencyText = (TextView) findViewById(R.id.text_latency);
        modelText = (TextView) findViewById(R.id.text_model);
    }

    private void setUpControls() {
        String[] threadLabels = new String[THREAD_CHOICES.length];
        for (int i = 0; i < THREAD_CHOICES.length; i++) {
            threadLabels[i] = Integer.toString(THREAD_CHOICES[i]);
        }
        ArrayAdapter<String> adapter = new ArrayAdapter<String>(this,
                android.R.layout.simple_spinner_item, threadLabels);
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item);
        threadsSpinner.setAdapter(adapter);
        runsEdit.setText(Integer.toString(DEFAULT_RUNS));

        findViewById(R.id.button_gallery).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View view) {
                startPicker(Pickers.image(), REQUEST_IMAGE);
            }
        });
        findViewById(R.id.button_camera).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View view) {
                startPicker(Pickers.cameraThumbnail(), REQUEST_PHOTO);
            }
        });
        findViewById(R.id.button_open_model).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View view) {
                startPicker(Pickers.modelFiles(), REQUEST_MODEL);
            }
        });
        findViewById(R.id.button_classify).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View view) {
                classify();
            }
        });
    }

    private void startPicker(Intent intent, int requestCode) {
        try {
            startActivityForResult(intent, requestCode);
        } catch (ActivityNotFoundException missing) {
            showError(getString(R.string.no_picker));
        }
    }

    private void onModelPicked(final List<Uri> uris) {
        if (uris.isEmpty()) {
            return;
        }
        submit(new BackgroundWorker.Task<ModelSelection>() {
            @Override
            public ModelSelection run() throws ModelLoadException {
                List<String> names = new ArrayList<String>();
                for (Uri uri : uris) {
                    names.add(DocumentNames.displayName(getContentResolver(), uri));
                }
                return ModelSelection.fromPick(uris, names);
            }
        }, new BackgroundWorker.Callback<ModelSelection>() {
            @Override
            public void onSuccess(ModelSelection selection) {
                if (selection.isComplete()) {
                    loadModelDocuments(selection);
                } else {
                    modelAwaitingMetadata = selection;
                    showStatus(getString(R.string.pick_metadata_prompt, selection.modelName()));
                    startPicker(Pickers.metadataFile(), REQUEST_METADATA);
                }
            }

            @Override
            public void onFailure(Exception error) {
                showError(error);
            }
        });
    }

    private void onMetadataPicked(final ModelSelection modelOnly, final Uri metadataUri) {
        submit(new BackgroundWorker.Task<ModelSelection>() {
            @Override
            public ModelSelection run() throws ModelLoadException {
                return modelOnly.withMetadata(metadataUri,
                        DocumentNames.displayName(getContentResolver(), metadataUri));
            }
        }, new BackgroundWorker.Callback<ModelSelection>() {
            @Override
            public void onSuccess(ModelSelection selection) {
                loadModelDocuments(selection);
            }

            @Override
            public void onFailure(Exception error) {
                showError(error);
            }
        });
    }

    private void loadModelDocuments(final ModelSelection selection) {
        loadModel(getString(R.string.loading_model, selection.modelName()),
                new BackgroundWorker.Task<LoadedModel>() {
                    @Override
                    public LoadedModel run() throws ModelLoadException {
                        return ModelReader.fromDocuments(getContentResolver(), selection);
                    }
                });
    }

    /**
     * Reads a model and makes it current. A model that fails to read leaves the previous one in
     * place; one that reads but gets no engine is shown with the reason.
     */
    private void loadModel(String progressMessage, final BackgroundWorker.Task<LoadedModel> read) {
        showStatus(progressMessage);
        final int threads = selectedThreads();
        submit(new BackgroundWorker.Task<ModelStatus>() {
            @Override
            public ModelStatus run() throws Exception {
                LoadedModel loaded = read.run();
                try {
                    session.setModel(loaded, threads);
                    return new ModelStatus(loaded, null);
                } catch (RuntimeUnavailableException | ModelLoadException noEngine) {
                    return new ModelStatus(loaded, noEngine.getMessage());
                }
            }
        }, new BackgroundWorker.Callback<ModelStatus>() {
            @Override
            public void onSuccess(ModelStatus status) {
                model = status.model;
                modelText.setText(ReportText.modelFacts(model));
                PredictionRows.clear(predictionList);
                latencyText.setText("");
                if (status.engineProblem != null) {
                    showError(status.engineProblem);
                } else if (image != null) {
                    classify();
                } else {
                    showStatus(getString(R.string.ready));
                }
            }

            @Override
            public void onFailure(Exception error) {
                showError(error);
            }
        });
    }

    private void loadImage(final Uri uri) {
        showStatus(getString(R.string.decoding_image));
        submit(new BackgroundWorker.Task<PixelImage>() {
            @Override
            public PixelImage run() throws ImageDecodeException {
                return ImageLoader.decode(getContentResolver(), uri,
                        DocumentNames.displayName(getContentResolver(), uri));
            }
        }, imageCallback());
    }

    private void loadThumbnail(final Bitmap thumbnail) {
        submit(new BackgroundWorker.Task<PixelImage>() {
            @Override
            public PixelImage run() {
                return ImageLoader.fromBitmap(thumbnail, "camera thumbnail");
            }
        }, imageCallback());
    }

    private BackgroundWorker.Callback<PixelImage> imageCallback() {
        return new BackgroundWorker.Callback<PixelImage>() {
            @Override
            public void onSuccess(PixelImage decoded) {
                image = decoded;
                imageView.setImageBitmap(decoded.preview());
                imageText.setText(decoded.description());
                PredictionRows.clear(predictionList);
                latencyText.setText("");
                classify();
            }

            @Override
            public void onFailure(Exception error) {
                showError(error);
            }
        };
    }

    /** Classifies the current image with the current model, settings from the controls. */
    private void classify() {
        if (image == null) {
            showError(getString(R.string.no_image));
            return;
        }
        if (model == null) {
            showError(getString(R.string.no_model));
            return;
        }
        final int runs = selectedRuns();
        if (runs < 1) {
            showError(getString(R.string.runs_invalid, MAX_RUNS));
            return;
        }
        final int threads = selectedThreads();
        final PixelImage input = image;
        showStatus(getString(R.string.classifying, runs, threads));
        submit(new BackgroundWorker.Task<ClassificationResult>() {
            @Override
            public ClassificationResult run() throws Exception {
                return session.classify(input, threads, runs);
            }
        }, new BackgroundWorker.Callback<ClassificationResult>() {
            @Override
            public void onSuccess(ClassificationResult result) {
                PredictionRows.show(predictionList, result.top());
                latencyText.setText(ReportText.latency(result.latency(), threads));
                showStatus(getString(R.string.ready));
            }

            @Override
            public void onFailure(Exception error) {
                showError(error);
            }
        });
    }

    private int selectedThreads() {
        int position = threadsSpinner.getSelectedItemPosition();
        return THREAD_CHOICES[position >= 0 ? position : 0];
    }

    /** @return the runs field's value, or -1 when it is not a number in 1..MAX_RUNS */
    private int selectedRuns() {
        try {
            int runs = Integer.parseInt(runsEdit.getText().toString().trim());
            return runs >= 1 && runs <= MAX_RUNS ? runs : -1;
        } catch (NumberFormatException notANumber) {
            return -1;
        }
    }

    /** Queues a task with the action buttons disabled until every queued task has answered. */
    private <T> void submit(BackgroundWorker.Task<T> task,
            final BackgroundWorker.Callback<T> callback) {
        tasksRunning++;
        setActionsEnabled(false);
        worker.submit(task, new BackgroundWorker.Callback<T>() {
            @Override
            public void onSuccess(T result) {
                taskDone();
                callback.onSuccess(result);
            }

            @Override
            public void onFailure(Exception error) {
                taskDone();
                callback.onFailure(error);
            }
        });
    }

    private void taskDone() {
        tasksRunning--;
        if (tasksRunning == 0) {
            setActionsEnabled(true);
        }
    }

    private void setActionsEnabled(boolean enabled) {
        for (Button button : actionButtons) {
            button.setEnabled(enabled);
        }
    }

    private void showStatus(String message) {
        statusText.setTextColor(statusDefaultColor);
        statusText.setText(message);
    }

    private void showError(String message) {
        statusText.setTextColor(ERROR_COLOR);
        statusText.setText(message);
    }

    private void showError(Exception error) {
        showError(ErrorMessages.describe(error));
    }

    /** A model that was read, and why it has no engine (null when it has one). */
    private static final class ModelStatus {
        final LoadedModel model;
        final String engineProblem;

        ModelStatus(LoadedModel model, String engineProblem) {
            this.model = model;
            this.engineProblem = engineProblem;
        }
    }
}
