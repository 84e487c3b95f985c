"""Image folders in the ImageNet layout: ``root/<class name>/<image>.jpg|jpeg|png``."""

from tflbnn import _backend  # noqa: F401  (must come first)

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from tflbnn.data.image_check import check_images

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "scan_image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The files of an image folder and their labels.

    Attributes:
        root: the folder holding one sub-folder per class.
        paths: image files, grouped by class then sorted by name.
        labels: int64 class index of each file.
        class_names: class names; index = label.
    """

    root: Path
    paths: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def _entries(folder: Path) -> list[Path]:
    # Listing errors (permissions, a folder replaced by a file) become messages naming it.
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise ValueError(f"cannot list the folder {folder}: {error.strerror or error}") from None
    for entry in entries:
        # is_dir()/is_file() are False for a dangling link or a symlink loop, which would
        # silently drop a class or an image; name it instead.
        if entry.is_symlink() and not entry.exists() and not entry.name.startswith("."):
            raise ValueError(f"{entry} is a broken symbolic link or a symlink loop (it points "
                             f"to {os.readlink(entry)!r}); fix or remove it")
    return entries


def _class_folders(root: Path) -> list[str]:
    return [entry.name for entry in _entries(root)
            if entry.is_dir() and not entry.name.startswith(".")]


def _image_files(folder: Path) -> list[Path]:
    # Other files (.DS_Store, Thumbs.db, annotations) are not images and are ignored.
    return [entry for entry in _entries(folder)
            if entry.is_file() and not entry.name.startswith(".")
            and entry.suffix.lower() in IMAGE_EXTENSIONS]


def scan_image_folder(root: str | os.PathLike, class_names: Sequence[str] | None = None, *,
                      check: str = "verify", skip_invalid: bool = False) -> ImageFolder:
    """List and check the images of a class-per-folder data set.

    Files directly inside each class folder whose extension is .jpg, .jpeg or .png (any
    case) are images; other files and nested folders are ignored. Every image is checked
    up front (with PIL, and always against ``image_header.MAX_IMAGE_PIXELS``) so a bad file
    is reported by name now, not mid-epoch by TensorFlow.

    Args:
        root: folder with one sub-folder per class.
        class_names: the classes in label order. Default: the sorted sub-folder names. When
            given (e.g. the training classes when scanning a test folder), every class must
            have a folder and no other class folder may exist.
        check: how thoroughly to check images, see ``image_check.image_problem``:
            "verify" (default), "decode" or "none".
        skip_invalid: leave out unreadable images with a ``warnings.warn`` listing them,
            instead of raising.

    Returns:
        The ``ImageFolder``.

    Raises:
        FileNotFoundError: if ``root`` or a named class's folder does not exist.
        ValueError: if ``root`` has no class folders, has a folder not in ``class_names``, a
            class folder holds no images, a folder cannot be listed, an entry is a broken
            symbolic link or symlink loop, or an image is unreadable or too large (unless
            ``skip_invalid``). Messages name the folder, class or file.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"image folder {root} is a file, not a folder of class sub-folders")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = _class_folders(root)
    if class_names is None:
        if not found:
            raise ValueError(f"image folder {root} has no class sub-folders (expected "
                             f"{root}/<class name>/<image>.jpg)")
        class_names = found
    else:
        class_names = [str(name) for name in class_names]
        extra = sorted(set(found) - set(class_names))
        if extra:
            raise ValueError(f"image folder {root} has folders that are not known classes: "
                             f"{extra} (known: {class_names})")
        for name in class_names:
            if not (root / name).is_dir():
                raise FileNotFoundError(f"class {name!r} has no folder: {root / name}")
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        files = _image_files(root / name)
        if not files:
            raise ValueError(f"class {name!r} has no images: folder {root / name} holds no "
                             f"{'/'.join(IMAGE_EXTENSIONS)} files")
        paths.extend(str(f) for f in files)
        labels.extend([index] * len(files))
    keep = check_images(paths, check=check, skip_invalid=skip_invalid, what="image file")
    emptied = [class_names[index] for index in sorted(set(labels) - {labels[i] for i in keep})]
    if emptied:
        raise ValueError(f"image folder {root}: no valid images left in class(es) {emptied} "
                         f"after skipping the invalid ones")
    return ImageFolder(
        root=root,
        paths=tuple(paths[i] for i in keep),
        labels=np.asarray([labels[i] for i in keep], dtype=np.int64),
        class_names=tuple(class_names),
    )
