package org.tflbnn.demo;

import android.os.Handler;
import android.os.Looper;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Runs the app's slow work (file reading, image decoding, inference) on one background thread
 * and delivers the outcome on the main thread.
 *
 * <p>One thread on purpose: the interpreter is not thread-safe and model, engine and image
 * state are only touched by tasks, so tasks never race and run in the order they were given.
 */
final class BackgroundWorker {

    /** Work to run off the main thread. */
    interface Task<T> {
        /**
         * Does the work.
         *
         * @return the value handed to {@link Callback#onSuccess}
         * @throws Exception any failure; it is handed to {@link Callback#onFailure}
         */
        T run() throws Exception;
    }

    /** Receives a task's outcome on the main thread. */
    interface Callback<T> {
        /** @param result what the task returned */
        void onSuccess(T result);

        /** @param error what the task threw (errors such as out-of-memory arrive wrapped) */
        void onFailure(Exception error);
    }

    private final ExecutorService executor = Executors.newSingleThreadExecutor();
    private final Handler mainHandler = new Handler(Looper.getMainLooper());
    /** Set on the main thread by {@link #shutdown}; read there before each delivery. */
    private boolean stopped;

    /**
     * Queues a task; its callback runs on the main thread unless {@link #shutdown} came first.
     *
     * @param task the work
     * @param callback receives the result or the failure
     */
    <T> void submit(final Task<T> task, final Callback<T> callback) {
        executor.execute(new Runnable() {
            @Override
            public void run() {
                try {
                    deliverSuccess(callback, task.run());
                } catch (Exception error) {
                    deliverFailure(callback, error);
                } catch (OutOfMemoryError error) {
                    // A huge image or model fails one allocation; the heap is fine again once
                    // the task's arrays are gone, so the app reports it instead of dying.
                    deliverFailure(callback, new Exception("not enough memory for this task ("
                            + error.getMessage() + ")", error));
                } catch (LinkageError error) {
                    // E.g. the runtime's native library has no build for this CPU.
                    deliverFailure(callback, new Exception(
                            "the TFLite/LCE runtime could not be loaded: " + error, error));
                }
            }
        });
    }

    /**
     * Queues work whose result nobody waits for, such as releasing the engine; it still runs
     * after {@link #shutdown}, which lets queued tasks finish.
     *
     * @param work what to run on the background thread
     */
    void execute(Runnable work) {
        executor.execute(work);
    }

    /** Stops delivering results (the activity is gone) and ends the thread after queued tasks. */
    void shutdown() {
        stopped = true;
        executor.shutdown();
    }

    private <T> void deliverSuccess(final Callback<T> callback, final T result) {
        mainHandler.post(new Runnable() {
            @Override
            public void run() {
                if (!stopped) {
                    callback.onSuccess(result);
                }
            }
        });
    }

    private <T> void deliverFailure(final Callback<T> callback, final Exception error) {
        mainHandler.post(new Runnable() {
            @Override
            public void run() {
                if (!stopped) {
                    callback.onFailure(error);
                }
            }
        });
    }
}
