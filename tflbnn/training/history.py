"""Training history: read the CSV log written during training and plot it as a PNG."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Mapping, Sequence

from tflbnn.metadata import write_bytes_atomic

__all__ = ["read_history", "truncate_history", "plot_histories", "plot_validation_accuracy",
           "save_figure"]


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a Keras ``CSVLogger`` file, one per epoch.

    When a resumed run logged an epoch twice, the later row wins.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training history not found: {path}")
    by_epoch: dict[int, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            values = {key: float(value) for key, value in row.items() if value not in ("", None)}
            by_epoch[int(values["epoch"])] = values
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def truncate_history(path: str | os.PathLike, epochs: int) -> None:
    """Keep only the rows of epochs ``0 .. epochs - 1`` of a ``CSVLogger`` file, atomically.

    A run resumed after ``epochs`` finished epochs logs the later epochs again; rows an
    interrupted try wrote for them (its checkpoint had not been committed) must go first, or
    the history would mix two tries. With no row left the file is removed, so that the next
    ``CSVLogger`` writes its header.

    Args:
        path: the history file (a missing file is left missing).
        epochs: the number of leading epochs to keep.
    """
    path = Path(path)
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = [row for row in reader if row.get("epoch") not in (None, "")
                and int(float(row["epoch"])) < epochs]
    if not rows:
        path.unlink()
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)  # the excel dialect, as CSVLogger
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, text.getvalue().encode())


def plot_histories(histories: Mapping[str, Sequence[Mapping[str, float]]],
                   path: str | os.PathLike, title: str = "") -> Path:
    """Plot loss and accuracy per epoch of one or more stages, stages laid end to end.

    Args:
        histories: stage name → rows from ``read_history``.
        path: PNG to write.
        title: figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    start = 0
    for stage, rows in histories.items():
        epochs = [start + row["epoch"] + 1 for row in rows]
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if rows and key in rows[0]:
                loss_axis.plot(epochs, [row[key] for row in rows], style, label=f"{stage} {key}")
        for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
            if rows and key in rows[0]:
                accuracy_axis.plot(epochs, [row[key] for row in rows], style,
                                   label=f"{stage} {key}")
        start += len(rows)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss (distillation or cross-entropy)")
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.set_ylabel("top-1 accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_validation_accuracy(histories: Mapping[str, Sequence[Mapping[str, float]]],
                             path: str | os.PathLike, *, xlabel: str = "epoch",
                             ylabel: str = "validation top-1 (%)") -> Path:
    """Overlay the validation accuracy per epoch of several runs, one line each.

    Args:
        histories: run name → rows from ``read_history`` (each with ``val_accuracy``).
        path: PNG to write.
        xlabel: x-axis label.
        ylabel: y-axis label.

    Returns:
        The path written.

    Raises:
        ValueError: if a history has no ``val_accuracy`` column.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    for name, rows in histories.items():
        if any("val_accuracy" not in row for row in rows):
            raise ValueError(f"history of {name!r} has epochs without val_accuracy")
        axis.plot([row["epoch"] + 1 for row in rows],
                  [100 * row["val_accuracy"] for row in rows], marker="o", label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG through a temporary file and a rename, then close it.

    Returns:
        The path written.
    """
    import matplotlib.pyplot as plt

    # Rendered in memory and written by the one atomic writer, whose unique temporary name
    # lets several processes write the same plot at once.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return write_bytes_atomic(path, buffer.getvalue())
