"""Fashion-MNIST: the full data set from disk, or the stratified subset shipped with tflbnn.

Fashion-MNIST (Zalando, MIT License) has 60000 training and 10000 test grey 28×28 images of
10 clothing classes. The full files come from Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``) or any folder with the four original gzipped IDX
files. The embedded subset (1000 training and 200 test images per class, made by
``scripts/make_embedded_fashion_mnist.py``) lets examples and tests run offline.
"""

from tflbnn import _backend  # noqa: F401  (must come first)

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tflbnn.data.idx import load_idx_pair, read_idx
from tflbnn.metadata import Preprocessing

__all__ = [
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_ENV_VAR",
    "DEBIAN_DIR",
    "EMBEDDED_DIR",
    "load_fashion_mnist",
    "fashion_mnist_preprocessing",
    "fashion_mnist_manifest",
    "embedded_source_indices",
    "find_full_fashion_mnist",
]

FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_ENV_VAR = "TFLBNN_FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
MANIFEST_NAME = "fashion-mnist.json"
SPLIT_FILES = {
    "train": {
        "images": "train-images-idx3-ubyte.gz",
        "labels": "train-labels-idx1-ubyte.gz",
        "source_indices": "train-source-indices-idx1-int.gz",
    },
    "test": {
        "images": "t10k-images-idx3-ubyte.gz",
        "labels": "t10k-labels-idx1-ubyte.gz",
        "source_indices": "t10k-source-indices-idx1-int.gz",
    },
}
SOURCES = ("auto", "embedded", "full")
_HOW_TO_GET = (f"install Debian's dataset-fashion-mnist package (apt-get install "
               f"dataset-fashion-mnist, files in {DEBIAN_DIR}), or download the four "
               f"*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist and set "
               f"{FASHION_MNIST_ENV_VAR} to their folder (or pass data_dir)")


def _check_split(split: str) -> None:
    if split not in SPLIT_FILES:
        raise ValueError(f"Fashion-MNIST split must be one of {list(SPLIT_FILES)}, got {split!r}")


def _full_file(folder: Path, gz_name: str) -> Path | None:
    # The original files are gzipped; accept them unpacked too.
    for candidate in (folder / gz_name, folder / gz_name[:-len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def find_full_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path | None:
    """Locate a folder holding the full Fashion-MNIST IDX files.

    Looks in ``data_dir``, else the folder named by ``TFLBNN_FASHION_MNIST_DIR``, else
    Debian's ``/usr/share/datasets/fashion-mnist``.

    Args:
        data_dir: folder to use instead of the environment variable and the Debian path.

    Returns:
        The folder if all four files are there, else ``None``.
    """
    folder = Path(data_dir or os.environ.get(FASHION_MNIST_ENV_VAR) or DEBIAN_DIR)
    for names in SPLIT_FILES.values():
        if _full_file(folder, names["images"]) is None or \
                _full_file(folder, names["labels"]) is None:
            return None
    return folder


@functools.lru_cache(maxsize=1)
def _manifest() -> dict:
    path = EMBEDDED_DIR / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"embedded Fashion-MNIST manifest missing: {path}; the tflbnn "
                                f"installation is incomplete (reinstall it, or run "
                                f"scripts/make_embedded_fashion_mnist.py in a checkout)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: the embedded Fashion-MNIST manifest is not valid JSON "
                         f"({error}); reinstall tflbnn") from None


def fashion_mnist_manifest() -> dict:
    """The manifest of the embedded subset (counts, seed, checksums, full-set pixel stats).

    Returns:
        A copy of the parsed ``tflbnn/data/embedded/fashion-mnist.json``.

    Raises:
        FileNotFoundError: if the manifest is not installed.
    """
    return json.loads(json.dumps(_manifest()))


def _embedded_path(split: str, kind: str) -> Path:
    entry = _manifest()["splits"][split]["files"][kind]
    path = EMBEDDED_DIR / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"embedded Fashion-MNIST file missing: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"{path}: checksum mismatch with {MANIFEST_NAME} (sha256 {digest}, "
                         f"expected {entry['sha256']}); the file is corrupt or was regenerated "
                         f"without updating the manifest")
    return path


def embedded_source_indices(split: str = "train") -> np.ndarray:
    """Where each embedded image comes from in the full data set.

    Args:
        split: "train" or "test".

    Returns:
        int64 array: embedded image ``i`` is full-set image ``indices[i]`` of the same split.

    Raises:
        ValueError: if ``split`` is unknown or the file fails its checksum.
    """
    _check_split(split)
    return read_idx(_embedded_path(split, "source_indices")).astype(np.int64)


def load_fashion_mnist(split: str = "train", *, source: str = "auto",
                       data_dir: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST images and labels.

    Args:
        split: "train" or "test".
        source: "full" reads the original files (see ``find_full_fashion_mnist``);
            "embedded" reads the subset inside the package (10000 train / 2000 test);
            "auto" uses the full set when it can be found, else the subset. An explicit
            ``data_dir`` or ``TFLBNN_FASHION_MNIST_DIR`` that lacks the files is an error even
            with "auto"; only the Debian default falls back silently.
        data_dir: folder of the full files, overriding the environment variable.

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28, 1)`` and int64 ``(N,)``; labels index
        ``FASHION_MNIST_LABELS``.

    Raises:
        ValueError: if ``split`` or ``source`` is unknown or a file is invalid.
        FileNotFoundError: if the full set is required but missing; the message says how to
            get it.
    """
    _check_split(split)
    if source not in SOURCES:
        raise ValueError(f"Fashion-MNIST source must be one of {list(SOURCES)}, got {source!r}")
    names = SPLIT_FILES[split]
    if source in ("auto", "full"):
        folder = find_full_fashion_mnist(data_dir)
        explicit = data_dir is not None or bool(os.environ.get(FASHION_MNIST_ENV_VAR))
        if folder is not None:
            return load_idx_pair(_full_file(folder, names["images"]),
                                 _full_file(folder, names["labels"]))
        if source == "full" or explicit:
            where = Path(data_dir or os.environ.get(FASHION_MNIST_ENV_VAR) or DEBIAN_DIR)
            raise FileNotFoundError(
                f"full Fashion-MNIST not found in {where} (need {names['images']}, "
                f"{names['labels']} and the other split's files). To get it, {_HOW_TO_GET}. "
                f"Or use source='embedded' for the subset shipped with tflbnn.")
    return load_idx_pair(_embedded_path(split, "images"), _embedded_path(split, "labels"))


def fashion_mnist_preprocessing() -> Preprocessing:
    """The input rule of Fashion-MNIST models: 28×28 grey, normalized by the full train set.

    Returns:
        ``Preprocessing(28, 28, 1, (mean,), (std,))`` with the pixel mean/std of all 60000
        training images (in [0, 1] units) as computed by
        ``scripts/make_embedded_fashion_mnist.py`` and stored in the embedded manifest.

    Raises:
        FileNotFoundError: if the manifest is not installed.
    """
    stats = _manifest()["full_train_pixel_stats"]
    return Preprocessing(28, 28, 1, (stats["mean"],), (stats["std"],))
