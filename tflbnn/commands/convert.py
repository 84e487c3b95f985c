"""``tflbnn convert``: a trained ``.keras`` model → verified ``.tflite``, float twin, JSON.

The conversion path follows the model's layers (``tflbnn.converters.conversion_kind``): LCE for
binary models, full-integer int8 for N2UQ models, int8-stored weights for S3 models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tflbnn.commands import CommandError

__all__ = ["add_parser", "run", "DEFAULT_PARITY_COUNT"]

#: Parity images used by default: enough for the 99% quantile to tolerate two sign flips.
DEFAULT_PARITY_COUNT = 200


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a .keras model to a verified .tflite (LCE or int8), write metadata",
        description="Convert MODEL.keras along the path its layers call for, and a float32 twin: "
                    "binary layers -> LCE flatbuffer (every binary convolution must become "
                    "LceBconv2d); N2UQ quantizers -> full-integer int8 model calibrated on the "
                    "parity images (every activation int8, levels and kernels exact); S3 "
                    "shift-weight layers -> float32 model with the shift weights stored as int8, "
                    "losslessly. Then check parity with Keras and write OUT.tflite, "
                    "OUT.float.tflite and OUT.json (with the report) together. Nothing is "
                    "written when a check fails.")
    parser.add_argument("model", type=Path, help="the trained model (.keras)")
    parser.add_argument("-o", "--output", type=Path,
                        help="model to write (default: MODEL with .tflite)")
    parser.add_argument("--metadata", type=Path,
                        help="labels/preprocessing JSON (default: the sidecar MODEL.json)")
    parser.add_argument("--labels", type=Path,
                        help="class names, one per line (when there is no metadata JSON)")
    parser.add_argument("--mean", type=float, nargs="+",
                        help="per-channel mean in [0, 1] pixel units (with --labels)")
    parser.add_argument("--std", type=float, nargs="+",
                        help="per-channel std in [0, 1] pixel units (with --labels)")
    parser.add_argument("--center-crop", type=float, default=1.0,
                        help="fraction of each side kept before resizing (with --labels; "
                             "default 1)")
    parser.add_argument("--parity-images", type=Path, metavar="DIR_OR_NPY",
                        help="a .npy of preprocessed float32 inputs, or a folder of image files "
                             "(default: the test split of the data set named in the metadata)")
    parser.add_argument("--parity-count", type=int, default=DEFAULT_PARITY_COUNT, metavar="N",
                        help=f"images for the parity check, and for calibrating N2UQ int8 "
                             f"models (default {DEFAULT_PARITY_COUNT})")
    parser.add_argument("--allow-float-fallback", action="store_true",
                        help="LCE only: warn instead of failing when a binary layer does not "
                             "become LceBconv2d")
    parser.add_argument("--min-top1-agreement", type=float, default=None, metavar="X",
                        help="parity: minimum top-1 agreement with Keras (default 0.99)")
    parser.add_argument("--max-logit-delta", type=float, default=None, metavar="X",
                        help="parity: maximum median relative logit difference (default 1e-3; "
                             "0.1 for N2UQ int8, whose float parts are rounded to int8)")
    parser.add_argument("--no-float-reference", action="store_true",
                        help="do not write the float32 twin")
    parser.add_argument("--target", choices=("arm", "xcore"), default=None,
                        help="LCE converter target, LCE only (default arm)")
    parser.set_defaults(func=run)


def _read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    labels = [label for label in labels if label]
    if not labels:
        raise CommandError(f"{path}: no labels (expected one class name per line)")
    return labels


def _metadata(args: argparse.Namespace, model):
    from tflbnn.metadata import ModelMetadata, Preprocessing, labels_from_sequence, sidecar_path

    if args.metadata and args.labels:
        raise CommandError("give either --metadata or --labels/--mean/--std, not both")
    if args.metadata:
        return ModelMetadata.load(args.metadata)
    sidecar = sidecar_path(args.model)
    if args.labels is None:
        if sidecar.is_file():
            return ModelMetadata.load(sidecar)
        raise CommandError(f"no metadata: {sidecar} does not exist; pass --metadata M.json, or "
                           "--labels labels.txt with --mean and --std")
    if args.mean is None or args.std is None:
        raise CommandError("--labels needs --mean and --std (per-channel, in [0, 1] pixel units)")
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4:
        raise CommandError(f"{args.model}: --labels/--mean/--std describe an image classifier "
                           f"with one (N, height, width, channels) input; the model's input "
                           f"shape is {shape}")
    try:
        preprocessing = Preprocessing(*shape[1:], tuple(args.mean), tuple(args.std),
                                      center_crop=args.center_crop)
    except ValueError as error:
        raise CommandError(f"--mean/--std/--center-crop for {args.model} (input shape "
                           f"{shape}): {error}") from None
    return ModelMetadata(labels=labels_from_sequence(_read_labels(args.labels), args.labels),
                         preprocessing=preprocessing, name=args.model.stem)


def _images_from_folder(folder: Path, preprocessing, limit: int):
    import numpy as np

    from tflbnn.data import IMAGE_EXTENSIONS, load_image, preprocess

    files = sorted(path for path in folder.rglob("*")
                   if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    if not files:
        raise CommandError(f"{folder}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    images = [np.asarray(preprocess(load_image(path), preprocessing)) for path in files]
    return np.stack(images), f"{len(files)} image file(s) from {folder}"


def _parity_images(args: argparse.Namespace, metadata):
    """``(images or None, note)``: explicit images, else the recorded data set's test split."""
    import numpy as np

    if args.parity_count < 1:
        raise CommandError(f"--parity-count must be at least 1, got {args.parity_count}")
    source = args.parity_images
    if source is not None:
        if source.is_dir():
            return _images_from_folder(source, metadata.preprocessing, args.parity_count)
        if not source.is_file():
            raise FileNotFoundError(f"parity images not found: {source}")
        if source.suffix != ".npy":
            raise CommandError(f"{source}: parity images must be a .npy file or a folder of images")
        try:
            images = np.load(source, allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"{source}: not a numpy .npy array ({error})") from None
        images = images[:args.parity_count]
        return images, f"{len(images)} array(s) from {source}"
    spec = metadata.extra.get("data")
    if not spec:
        return None, ("no parity images: pass --parity-images, or convert a model whose metadata "
                      "records its data set (extra['data'])")
    from tflbnn.data import load_data

    try:
        images, _ = load_data(spec).test_arrays(args.parity_count)
    except (FileNotFoundError, ValueError) as error:
        return None, f"the recorded data set {spec} could not be loaded ({error})"
    return images, f"first {len(images)} test image(s) of the recorded data set {spec}"


def _check_options(args: argparse.Namespace, kind: str) -> None:
    """Reject the LCE-only options for a model that takes an int8 path."""
    from tflbnn.converters import KIND_LCE

    if kind == KIND_LCE:
        return
    given = [option for option, value in (("--target", args.target is not None),
                                          ("--allow-float-fallback", args.allow_float_fallback))
             if value]
    if given:
        raise CommandError(f"{' and '.join(given)} apply to LCE models only; {args.model} "
                           f"converts along the {kind!r} path")


def run(args: argparse.Namespace) -> int:
    from tflbnn.converters import (KIND_N2UQ_INT8, CoverageError, Int8WeightError,
                                   N2UQInt8Error, ParityError, conversion_kind, convert_model)
    from tflbnn.metadata import check_writable_output
    from tflbnn.model_files import load_keras_model

    output = args.output or args.model.with_suffix(".tflite")
    if output.suffix != ".tflite":
        raise CommandError(f"-o {output}: the converted model's file name must end in .tflite")
    # Before loading and converting: a destination that cannot be written fails now.
    check_writable_output(output)
    model = load_keras_model(args.model)
    kind = conversion_kind(model)
    _check_options(args, kind)
    metadata = _metadata(args, model)
    images, note = _parity_images(args, metadata)
    if images is None:
        if kind == KIND_N2UQ_INT8:
            raise CommandError(f"{args.model} has N2UQ quantizers; its int8 conversion "
                               f"calibrates on real images, and there are none: {note}")
        print(f"tflbnn convert: parity will NOT be checked: {note}")
    try:
        report = convert_model(
            model,
            output,
            metadata=metadata,
            parity_images=images,
            parity_note=note,
            strict_coverage=not args.allow_float_fallback,
            float_reference=not args.no_float_reference,
            lce_options={} if args.target is None else {"target": args.target},
            kind=kind,
            min_top1_agreement=args.min_top1_agreement,
            max_logit_delta=args.max_logit_delta,
        )
    except CoverageError as error:
        raise CommandError(f"{error} — nothing written; pass --allow-float-fallback to convert "
                           "anyway") from None
    except ParityError as error:
        hint = ""
        if kind == KIND_N2UQ_INT8:
            hint = ("; the N2UQ int8 path reaches 96-99% top-1 agreement on trained models "
                    "(96.4% at 2 bits, 98.3% at 3, 98.96% at 4 on Fashion-MNIST; see "
                    "tflbnn.converters.n2uq_int8); --min-top1-agreement and --max-logit-delta "
                    "set the thresholds")
        raise CommandError(f"{error} — nothing written{hint}") from None
    except (N2UQInt8Error, Int8WeightError) as error:
        raise CommandError(f"{error} — nothing written") from None
    print(report.summary())
    return 0
