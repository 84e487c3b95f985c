"""Tests of tflbnn.data against independent expectations (hand-made files, NumPy, PIL)."""

import gzip
import io
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tflbnn.data as data
from tflbnn.data import fashion_mnist
from tflbnn.metadata import Preprocessing

import tensorflow as tf

PHOTOS = Path(__file__).parent / "data" / "photos"
PNGS = sorted(PHOTOS.glob("*.png"))
JPEGS = sorted(PHOTOS.glob("*.jpg"))


def photo_label(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def idx_bytes(code: int, shape: tuple[int, ...], body: bytes) -> bytes:
    """An IDX file built by hand from the format description."""
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + body


def normalized(images: np.ndarray, mean, std) -> np.ndarray:
    """Step 4 of the rule in plain NumPy float32."""
    x = images.astype(np.float32) / np.float32(255)
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def bilinear_half_pixel(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Reference bilinear resize (half-pixel centres, clamped edges, no antialias), float64."""
    in_h, in_w = image.shape[:2]

    def taps(out_size, in_size):
        centre = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
        low = np.floor(centre)
        frac = centre - low
        low_i = np.clip(low.astype(int), 0, in_size - 1)
        high_i = np.clip(low.astype(int) + 1, 0, in_size - 1)
        return low_i, high_i, frac

    y0, y1, fy = taps(out_h, in_h)
    x0, x1, fx = taps(out_w, in_w)
    img = image.astype(np.float64)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bottom = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


# ---------------------------------------------------------------------------------------- IDX


def test_read_idx_hand_made_file(tmp_path):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8)
    path = tmp_path / "images.idx"
    path.write_bytes(idx_bytes(0x08, (2, 3, 4), pixels.tobytes()))
    np.testing.assert_array_equal(data.read_idx(path), pixels.reshape(2, 3, 4))
    ints = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "ints.idx.gz").write_bytes(gzip.compress(idx_bytes(0x0C, (3,), ints.tobytes())))
    assert data.read_idx(tmp_path / "ints.idx.gz").tolist() == [1, -2, 70000]


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip_and_reproducible(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data.write_idx(tmp_path / name, array)
    first = (tmp_path / name).read_bytes()
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), array)
    data.write_idx(tmp_path / name, array)
    assert (tmp_path / name).read_bytes() == first  # no gzip timestamp


@pytest.mark.parametrize("content, message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "dtype code 0x07"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x0a", "truncated IDX header"),
    (idx_bytes(0x08, (10, 28, 28), bytes(100)), "truncated"),
    (idx_bytes(0x08, (2,), bytes(3)), "trailing"),
    (b"\x00\x00", "too short"),
])
def test_read_idx_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_read_idx_truncated_gzip_and_missing_file(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (100,), bytes(100)))[:-10])
    with pytest.raises(ValueError, match="gzip") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError, match="nothing.gz"):
        data.read_idx(tmp_path / "nothing.gz")


def test_load_idx_pair_shapes_and_count_mismatch(tmp_path):
    images = np.zeros((4, 6, 5), np.uint8)
    data.write_idx(tmp_path / "images.gz", images)
    data.write_idx(tmp_path / "labels.gz", np.array([0, 1, 2, 3], np.uint8))
    data.write_idx(tmp_path / "labels3.gz", np.array([0, 1, 2], np.uint8))
    x, y = data.load_idx_pair(tmp_path / "images.gz", tmp_path / "labels.gz")
    assert x.shape == (4, 6, 5, 1) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="count mismatch") as error:
        data.load_idx_pair(tmp_path / "images.gz", tmp_path / "labels3.gz")
    assert "images.gz" in str(error.value) and "labels3.gz" in str(error.value)


# ------------------------------------------------------------------------------ Fashion-MNIST


def test_embedded_fashion_mnist_is_stratified():
    assert len(data.FASHION_MNIST_LABELS) == 10
    assert data.FASHION_MNIST_LABELS[0] == "T-shirt/top"
    assert data.FASHION_MNIST_LABELS[9] == "Ankle boot"
    for split, per_class in (("train", 1000), ("test", 200)):
        images, labels = data.load_fashion_mnist(split, source="embedded")
        assert images.shape == (10 * per_class, 28, 28, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_fashion_mnist_preprocessing_comes_from_manifest():
    manifest = data.fashion_mnist_manifest()
    stats = manifest["full_train_pixel_stats"]
    preprocessing = data.fashion_mnist_preprocessing()
    assert preprocessing.input_shape == (28, 28, 1)
    assert preprocessing.mean == (stats["mean"],) and preprocessing.std == (stats["std"],)
    # Published Fashion-MNIST statistics are about 0.286 and 0.353.
    assert abs(stats["mean"] - 0.286) < 0.002 and abs(stats["std"] - 0.353) < 0.002
    assert manifest["license"] == "MIT" and "Zalando" in manifest["license_note"]


def test_embedded_images_are_identical_to_the_full_set():
    full_dir = fashion_mnist.DEBIAN_DIR
    if fashion_mnist.find_full_fashion_mnist(full_dir) is None:
        pytest.skip(f"full Fashion-MNIST not installed in {full_dir} "
                    f"(apt-get install dataset-fashion-mnist)")
    for split in ("train", "test"):
        small_x, small_y = data.load_fashion_mnist(split, source="embedded")
        full_x, full_y = data.load_fashion_mnist(split, source="full", data_dir=full_dir)
        indices = data.embedded_source_indices(split)
        assert len(np.unique(indices)) == len(indices) == len(small_y)
        np.testing.assert_array_equal(small_x, full_x[indices])
        np.testing.assert_array_equal(small_y, full_y[indices])
        if split == "train":
            pixels = full_x.astype(np.float64) / 255
            stats = data.fashion_mnist_manifest()["full_train_pixel_stats"]
            assert stats["mean"] == pytest.approx(pixels.mean(), abs=1e-9)
            assert stats["std"] == pytest.approx(pixels.std(), abs=1e-9)


def write_fake_fashion_mnist(folder: Path, train: int = 20, test: int = 10) -> None:
    rng = np.random.default_rng(1)
    for prefix, count in (("train", train), ("t10k", test)):
        data.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                       rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        data.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                       (np.arange(count) % 10).astype(np.uint8))


def test_fashion_mnist_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(data.FASHION_MNIST_ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as error:
        data.load_fashion_mnist("train", source="full")
    assert data.FASHION_MNIST_ENV_VAR in str(error.value)
    assert len(data.load_fashion_mnist("test", source="auto")[1]) == 2000  # embedded fallback
    fake = tmp_path / "fake"
    write_fake_fashion_mnist(fake)
    monkeypatch.setenv(data.FASHION_MNIST_ENV_VAR, str(fake))
    assert len(data.load_fashion_mnist("train", source="auto")[1]) == 20
    assert len(data.load_fashion_mnist("test", source="full")[1]) == 10
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        data.load_fashion_mnist("train", source="auto", data_dir=tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("validation")
    with pytest.raises(ValueError, match="source"):
        data.load_fashion_mnist("train", source="web")


# ------------------------------------------------------------------------------ preprocessing


def test_preprocess_identity_size_is_exact_normalization():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    rule = Preprocessing(28, 28, 1, (0.2860406,), (0.3530242,))
    out = data.preprocess(grey, rule).numpy()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, normalized(grey, rule.mean, rule.std))
    np.testing.assert_array_equal(out, rule.normalize(grey))
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    rule = Preprocessing(9, 11, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    np.testing.assert_array_equal(data.preprocess(rgb, rule).numpy(),
                                  normalized(rgb, rule.mean, rule.std))


@pytest.mark.parametrize("height, width, fraction, box", [
    (10, 12, 0.5, (2, 3, 5, 6)),
    (7, 7, 0.875, (0, 0, 6, 6)),           # 6.125 rounds to 6, offset floor(1/2) = 0
    (224, 256, 0.875, (14, 16, 196, 224)),
    (5, 9, 0.7, (0, 1, 4, 6)),             # 3.5 -> 4 (round half up), 6.3 -> 6
    (3, 3, 0.01, (1, 1, 1, 1)),            # never less than one pixel
])
def test_center_crop_box(height, width, fraction, box):
    assert data.center_crop_box(height, width, fraction) == box


@pytest.mark.parametrize("height, width, fraction", [(10, 12, 0.5), (9, 13, 0.7), (8, 8, 1.0)])
def test_preprocess_crop_matches_manual_slicing(height, width, fraction):
    rgb = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    top, left, kept_h, kept_w = data.center_crop_box(height, width, fraction)
    rule = Preprocessing(kept_h, kept_w, 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), fraction)
    expected = normalized(rgb[top:top + kept_h, left:left + kept_w], rule.mean, rule.std)
    np.testing.assert_array_equal(data.preprocess(rgb, rule).numpy(), expected)
    # Unknown static size (as inside tf.data) takes the graph path; same result.
    dynamic = tf.function(lambda x: data.preprocess(x, rule),
                          input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    np.testing.assert_array_equal(dynamic(rgb).numpy(), expected)


@pytest.mark.parametrize("out_size", [(11, 13), (4, 3), (20, 20)])
def test_preprocess_resize_matches_reference_bilinear(out_size):
    rgb = np.random.default_rng(4).integers(0, 256, (9, 8, 3), dtype=np.uint8)
    rule = Preprocessing(*out_size, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    expected = bilinear_half_pixel(rgb, *out_size) / 255
    np.testing.assert_allclose(data.preprocess(rgb, rule).numpy(), expected, atol=1e-6)


def test_channel_conversion():
    rgb = np.random.default_rng(5).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    scaled = rgb.astype(np.float32) * np.float32(1 / 255)
    weights = [np.float32(w) for w in (0.2989, 0.5870, 0.1140)]
    luma = scaled[..., 0] * weights[0] + scaled[..., 1] * weights[1] + scaled[..., 2] * weights[2]
    expected = np.trunc(luma * np.float32(255.5)).astype(np.uint8)[..., None]
    grey = data.convert_channels(rgb, 1).numpy()
    np.testing.assert_array_equal(grey, expected)
    reference = tf.image.rgb_to_grayscale(rgb).numpy().astype(int)
    assert np.abs(grey - reference).max() <= 1 and (grey == reference).mean() > 0.99
    np.testing.assert_array_equal(data.convert_channels(grey, 3).numpy(), np.repeat(grey, 3, -1))
    # Grey -> RGB -> grey is lossless, so decoding grey files as RGB changes nothing.
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    np.testing.assert_array_equal(
        data.convert_channels(np.repeat(levels, 3, -1), 1).numpy(), levels)


def test_preprocess_same_in_eager_graph_and_tf_data():
    images = np.random.default_rng(8).integers(0, 256, (16, 20, 18, 3), dtype=np.uint8)
    rule = Preprocessing(9, 7, 1, (0.4466,), (0.2637,), center_crop=0.9)
    eager = data.preprocess(images, rule).numpy()
    graph = tf.function(lambda x: data.preprocess(x, rule))(images).numpy()
    per_image = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: data.preprocess(x, rule))
    np.testing.assert_array_equal(graph, eager)
    np.testing.assert_array_equal(np.stack(list(per_image.as_numpy_iterator())), eager)
    np.testing.assert_array_equal(np.stack([data.preprocess(x, rule) for x in images]), eager)


def test_pixel_mean_std():
    images = np.random.default_rng(9).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    mean, std = data.pixel_mean_std(images)
    pixels = images.reshape(-1, 3) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-12)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_load_image_modes_and_errors(tmp_path):
    for path in PNGS + JPEGS:
        image = data.load_image(path)
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert image.shape[:2] == ((32, 32) if path.suffix == ".png" else (512, 512))
    source = Image.open(PNGS[0])
    cases = {"P": 3, "RGBA": 3, "LA": 1, "L": 1, "1": 1}
    for mode, channels in cases.items():
        path = tmp_path / f"{mode}.png"
        path.write_bytes(png_bytes(source.convert(mode)))
        loaded = data.load_image(path)
        assert loaded.shape == (32, 32, channels)
        # TF decodes the same pixels (grey files come back repeated to RGB).
        decoded = data.decode_image(tf.constant(path.read_bytes())).numpy()
        np.testing.assert_array_equal(decoded, np.broadcast_to(loaded, (32, 32, 3)))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="cannot decode") as error:
        data.load_image(corrupt)
    assert str(corrupt) in str(error.value)
    deep = tmp_path / "sixteen.png"
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(deep)
    with pytest.raises(ValueError, match="16-bit") as error:
        data.load_image(deep)
    assert str(deep) in str(error.value)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        data.load_image(tmp_path / "missing.png")


def test_tf_decoding_matches_pil_on_photos():
    for path in PNGS + JPEGS:
        decoded = data.decode_image(tf.io.read_file(str(path))).numpy()
        np.testing.assert_array_equal(decoded, data.load_image(path), err_msg=str(path))


# ------------------------------------------------------------------------------ image folders


def make_image_folder(root: Path) -> Path:
    (root / "small").mkdir(parents=True)
    (root / "large").mkdir()
    for path in PNGS:
        shutil.copy(path, root / "small" / path.name)
    for path in JPEGS:
        shutil.copy(path, root / "large" / path.name)
    (root / "large" / "notes.txt").write_text("not an image; ignored")
    return root


def test_scan_image_folder(tmp_path):
    folder = data.scan_image_folder(make_image_folder(tmp_path / "photos"))
    assert folder.class_names == ("large", "small")
    assert len(folder) == len(PNGS) + len(JPEGS)
    assert folder.labels.tolist() == [0] * len(JPEGS) + [1] * len(PNGS)
    assert [Path(p).name for p in folder.paths] == [p.name for p in JPEGS + PNGS]
    renamed = data.scan_image_folder(tmp_path / "photos", class_names=["small", "large"])
    assert renamed.labels.tolist() == [0] * len(PNGS) + [1] * len(JPEGS)
    assert [Path(p).name for p in renamed.paths] == [p.name for p in PNGS + JPEGS]


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.scan_image_folder(tmp_path / "nowhere")
    root = make_image_folder(tmp_path / "photos")
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="class 'empty' has no images") as error:
        data.scan_image_folder(root)
    assert str(root / "empty") in str(error.value)
    with pytest.raises(ValueError, match="not known classes"):
        data.scan_image_folder(root, class_names=["large", "small"])
    with pytest.raises(FileNotFoundError, match="class 'tiny' has no folder"):
        data.scan_image_folder(root, class_names=["large", "small", "empty", "tiny"])


def test_image_folder_corrupt_files_raise_or_warn(tmp_path):
    root = make_image_folder(tmp_path / "photos")
    garbage = root / "small" / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    cut = root / "large" / "cut.jpg"
    cut.write_bytes(JPEGS[0].read_bytes()[:200])
    with pytest.raises(ValueError, match="invalid image file") as error:
        data.scan_image_folder(root)
    assert str(cut) in str(error.value) and "1 more" in str(error.value)
    with pytest.warns(UserWarning, match="skipped 2 invalid") as caught:
        folder = data.scan_image_folder(root, skip_invalid=True)
    message = str(caught[0].message)
    assert str(garbage) in message and str(cut) in message
    assert len(folder) == len(PNGS) + len(JPEGS)
    assert str(garbage) not in folder.paths


# ---------------------------------------------------------------------------------- TFRecords


def test_tfrecord_round_trip(tmp_path):
    path = tmp_path / "photos.tfrecord"
    sources = [str(p) for p in JPEGS] + [p.read_bytes() for p in PNGS]
    labels = [photo_label(p) for p in JPEGS + PNGS]
    assert data.write_tfrecord(path, sources, labels) == len(labels)
    assert data.scan_tfrecords(path, num_classes=1000) == len(labels)
    records = list(data.tfrecord_source(str(path), num_classes=1000))
    assert [int(label) for _, label in records] == labels
    for (image, _), original in zip(records, JPEGS + PNGS):
        np.testing.assert_array_equal(image.numpy(), data.load_image(original))
    shifted = list(data.tfrecord_source(path, label_offset=1, label_key="image/class/label"))
    assert [int(label) for _, label in shifted] == [x - 1 for x in labels]


def test_tfrecord_label_out_of_range_names_file(tmp_path):
    path = tmp_path / "bad-labels.tfrecord"
    data.write_tfrecord(path, [p.read_bytes() for p in PNGS], [0, 1, 12, 2])
    with pytest.raises(ValueError, match="record 2: label 12") as error:
        data.scan_tfrecords(path, num_classes=10)
    assert str(path) in str(error.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad-labels.tfrecord"):
        list(data.tfrecord_source(path, num_classes=10))
    with pytest.raises(ValueError, match="'image/class/id'") as error:
        data.scan_tfrecords(path, label_key="image/class/id")
    assert str(path) in str(error.value)


def test_tfrecord_corrupt_file_names_file(tmp_path):
    path = tmp_path / "garbage.tfrecord"
    path.write_bytes(b"this is not a TFRecord file at all, just bytes")
    with pytest.raises(ValueError, match="unreadable") as error:
        data.scan_tfrecords(path)
    assert str(path) in str(error.value)


def test_tfrecord_write_errors(tmp_path):
    with pytest.raises(ValueError, match="invalid image item 1"):
        data.write_tfrecord(tmp_path / "x.tfrecord", [PNGS[0].read_bytes(), b"junk"], [0, 1])
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        data.write_tfrecord(tmp_path / "x.tfrecord", PNGS[:2], [0])
    assert not (tmp_path / "x.tfrecord").exists()
    with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
        data.resolve_files(str(tmp_path / "train-*.tfrecord"))


# ---------------------------------------------------------------------------------- pipelines


def small_arrays(count: int = 20, channels: int = 1):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (count, 12, 12, channels), dtype=np.uint8)
    return images, np.arange(count, dtype=np.int64) % 5


def test_eval_pipeline_equals_preprocess_and_is_deterministic():
    images, labels = small_arrays()
    rule = Preprocessing(8, 10, 1, (0.3,), (0.2,), center_crop=0.8)
    dataset = data.make_dataset((images, labels), rule, batch_size=8)
    batches = list(dataset)
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]
    assert batches[0][0].dtype == tf.float32 and batches[0][1].dtype == tf.int64
    got = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(got, data.preprocess(images, rule).numpy())
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    again = np.concatenate([b[0].numpy() for b in dataset])
    np.testing.assert_array_equal(got, again)


def test_file_pipeline_equals_load_image_then_preprocess():
    rule = Preprocessing(24, 24, 3, data.IMAGENET_MEAN, data.IMAGENET_STD, center_crop=0.875)
    paths = PNGS + JPEGS
    source = data.file_source(paths, [photo_label(p) for p in paths])
    images, labels = next(iter(data.make_dataset(source, rule, batch_size=len(paths))))
    for image, path in zip(images.numpy(), paths):
        expected = data.preprocess(data.load_image(path), rule).numpy()
        np.testing.assert_array_equal(image, expected, err_msg=str(path))
    assert labels.numpy().tolist() == [photo_label(p) for p in paths]


def test_standard_augmentation_shifts_and_flips_but_keeps_labels():
    images, labels = small_arrays(16)
    rule = Preprocessing(12, 12, 1, (0.0,), (1.0,))
    train = data.make_dataset((images, labels), rule, batch_size=8, training=True,
                              augment="standard", shuffle_buffer=0, seed=7)
    augmented = np.concatenate([b[0].numpy() for b in train]) * 255
    np.testing.assert_array_equal(np.concatenate([b[1] for b in train]), labels)
    assert not np.array_equal(augmented, images.astype(np.float32))
    padded = np.pad(images.astype(np.float32), [(0, 0), (1, 1), (1, 1), (0, 0)])
    for out, pad in zip(augmented, padded):
        windows = [w for dy in range(3) for dx in range(3)
                   for w in (pad[dy:dy + 12, dx:dx + 12], pad[dy:dy + 12, dx:dx + 12][:, ::-1])]
        assert any(np.allclose(out, w, atol=1e-3) for w in windows)
    same_seed = data.make_dataset((images, labels), rule, batch_size=8, training=True,
                                  shuffle_buffer=0, seed=7)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in same_seed]) * 255,
                                  augmented)


def test_crop_resize_augmentation():
    images, labels = small_arrays(8, channels=3)
    rule = Preprocessing(12, 12, 3, (0.5,) * 3, (0.25,) * 3)
    train = data.make_dataset((images, labels), rule, batch_size=8, training=True,
                              augment="crop_resize", shuffle_buffer=0, seed=1)
    batch_images, batch_labels = next(iter(train))
    assert batch_images.shape == (8, 12, 12, 3) and batch_images.dtype == tf.float32
    np.testing.assert_array_equal(batch_labels.numpy(), labels)
    assert not np.allclose(batch_images.numpy(), data.preprocess(images, rule).numpy())


@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixup_and_cutmix_give_one_hot_rows_summing_to_one(mixup, cutmix):
    images, labels = small_arrays(16)
    rule = Preprocessing(12, 12, 1, (0.5,), (0.5,))
    train = data.make_dataset((images, labels), rule, batch_size=8, training=True,
                              augment=None, mixup=mixup, cutmix=cutmix, num_classes=5, seed=3)
    for batch_images, batch_labels in train:
        assert batch_images.shape == (8, 12, 12, 1)
        assert batch_labels.shape == (8, 5) and batch_labels.dtype == tf.float32
        np.testing.assert_allclose(batch_labels.numpy().sum(axis=1), 1.0, atol=1e-5)
        assert (batch_labels.numpy() >= 0).all()


def test_make_dataset_option_errors():
    arrays = small_arrays(4)
    rule = Preprocessing(12, 12, 1, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="augment"):
        data.make_dataset(arrays, rule, batch_size=2, training=True, augment="autoaugment")
    with pytest.raises(ValueError, match="num_classes"):
        data.make_dataset(arrays, rule, batch_size=2, training=True, mixup=0.2)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(arrays, rule, batch_size=0)
    with pytest.raises(ValueError, match="uint8"):
        data.array_source(arrays[0].astype(np.float32), arrays[1])


# ------------------------------------------------------------------------------- data bundles


def test_stratified_first_n():
    labels = np.array([2, 0, 0, 1, 0, 2, 2, 0, 1])
    # turn 1: first 0 (1), first 1 (3), first 2 (0); turn 2: second 0 (2), second 1 (8), ...
    assert data.stratified_first_n(labels, 4).tolist() == [0, 1, 2, 3]
    assert data.stratified_first_n(labels, 5).tolist() == [0, 1, 2, 3, 8]
    assert data.stratified_first_n(labels, None).tolist() == list(range(9))


def test_load_data_spec_errors():
    with pytest.raises(ValueError, match="fashion_mnist, idx, image_folder, tfrecord"):
        data.load_data({"kind": "cifar10"})
    with pytest.raises(ValueError, match="'test_labels'"):
        data.load_data({"kind": "idx", "train_images": "a", "train_labels": "b",
                        "test_images": "c"})
    with pytest.raises(ValueError, match="unknown key.*'sorce'"):
        data.load_data({"kind": "fashion_mnist", "sorce": "embedded"})


def test_load_data_fashion_mnist_embedded():
    bundle = data.load_data({"kind": "fashion_mnist", "source": "embedded",
                             "limit_train": 50, "limit_test": 30})
    assert bundle.labels == data.FASHION_MNIST_LABELS and bundle.num_classes == 10
    assert (bundle.num_train, bundle.num_test) == (50, 30)
    assert bundle.preprocessing == data.fashion_mnist_preprocessing()
    images, labels = bundle.test_arrays(limit=12)
    assert images.shape == (12, 28, 28, 1) and images.dtype == np.float32
    raw_x, raw_y = data.load_fashion_mnist("test", source="embedded")
    keep = data.stratified_first_n(raw_y, 30)[:12]
    np.testing.assert_array_equal(labels, raw_y[keep])
    np.testing.assert_array_equal(images, data.preprocess(raw_x[keep], bundle.preprocessing))
    batch_images, batch_labels = next(iter(bundle.train_dataset(16, seed=0)))
    assert batch_images.shape == (16, 28, 28, 1) and batch_labels.shape == (16,)
    assert [b[0].shape[0] for b in bundle.test_dataset(16)] == [16, 14]
    with pytest.raises(ValueError, match="batch_size 64 is larger than the 50"):
        bundle.train_dataset(64)


def test_load_data_idx(tmp_path):
    write_fake_fashion_mnist(tmp_path)
    spec = {"kind": "idx", **{f"{split}_{kind}": str(tmp_path / f"{prefix}-{kind}-idx"
                                                     f"{3 if kind == 'images' else 1}-ubyte.gz")
                              for split, prefix in (("train", "train"), ("test", "t10k"))
                              for kind in ("images", "labels")}}
    bundle = data.load_data(spec)
    assert bundle.labels == tuple(str(i) for i in range(10))
    train_x = data.read_idx(tmp_path / "train-images-idx3-ubyte.gz") / 255
    assert bundle.preprocessing.mean[0] == pytest.approx(train_x.mean())
    assert bundle.preprocessing.std[0] == pytest.approx(train_x.std())
    with pytest.raises(ValueError, match="outside the 3 class names") as error:
        data.load_data({**spec, "labels": ["a", "b", "c"]})
    assert "train-labels-idx1-ubyte.gz" in str(error.value)


def test_load_data_image_folder_and_tfrecord(tmp_path):
    make_image_folder(tmp_path / "train")
    make_image_folder(tmp_path / "test")
    bundle = data.load_data({"kind": "image_folder", "train_dir": str(tmp_path / "train"),
                             "test_dir": str(tmp_path / "test"), "image_size": [16, 16]})
    assert bundle.labels == ("large", "small") and bundle.num_test == len(PNGS) + len(JPEGS)
    assert bundle.preprocessing.center_crop == 0.875
    images, labels = bundle.test_arrays()
    assert images.shape == (7, 16, 16, 3)
    batch_images, _ = next(iter(bundle.train_dataset(4, seed=0)))
    assert batch_images.shape == (4, 16, 16, 3)

    paths = JPEGS + PNGS
    data.write_tfrecord(tmp_path / "train.tfrecord", paths, [0] * 3 + [1] * 4)
    data.write_tfrecord(tmp_path / "test.tfrecord", paths, [0] * 3 + [1] * 4)
    spec = {"kind": "tfrecord", "train_files": str(tmp_path / "train*.tfrecord"),
            "test_files": [str(tmp_path / "test.tfrecord")], "labels": ["large", "small"],
            "image_size": [16, 16]}
    records = data.load_data(spec)
    assert (records.num_train, records.num_test) == (7, 7)
    record_images, record_labels = records.test_arrays()
    np.testing.assert_array_equal(record_images, images)
    np.testing.assert_array_equal(record_labels, labels)
    with pytest.raises(ValueError, match="train.tfrecord, record 3: label 1"):
        data.load_data({**spec, "labels": ["large"]})
