"""Bad data is refused by name: image bombs, malformed IDX/TFRecord files and image folders,
and wrongly typed data specs (issue 17 §4).

Every hostile file is generated here from the formats' descriptions (PNG chunks, JPEG marker
segments, BMP headers, IDX headers, TFRecord framing); nothing large is committed or decoded.
"""

import gzip
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tflbnn.data as data
from tflbnn.cli import main

import tensorflow as tf

PHOTOS = Path(__file__).parent / "data" / "photos"
PNGS = sorted(PHOTOS.glob("*.png"))
JPEGS = sorted(PHOTOS.glob("*.jpg"))
LIMIT_TEXT = f"{data.MAX_IMAGE_PIXELS:,}"


# ------------------------------------------------------------------------ hand-made bombs


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit grey PNG of all-black rows: about 48 KiB for 20000×20000."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_bomb(width: int = 65500, height: int = 65500, exif: int = 0) -> bytes:
    """A JPEG header (JFIF, optional APP1 padding, baseline SOF0) claiming width×height."""
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    app1 = jpeg_segment(0xE1, b"Exif\x00\x00" + bytes(exif)) if exif else b""
    return (b"\xff\xd8" + jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + app1 + jpeg_segment(0xC0, frame) + b"\xff\xd9")


def bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP header claiming width×height, with no pixel data after it."""
    row = (width * 3 + 3) // 4 * 4
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, row * height, 2835, 2835,
                       0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + row * height, 0, 0, 54) + info


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    png = folder / "bomb.png"
    png.write_bytes(png_bomb())
    jpeg = folder / "bomb.jpg"
    jpeg.write_bytes(jpeg_bomb())
    return {"png": png, "jpeg": jpeg}


def assert_names_bomb(message: str, path_or_name, size: str) -> None:
    assert str(path_or_name) in message
    assert size in message
    assert LIMIT_TEXT in message


def test_the_bombs_are_small_and_bombs_to_pil(bombs):
    assert bombs["png"].stat().st_size < 64 * 1024
    for path in bombs.values():
        with pytest.raises(Image.DecompressionBombError):
            Image.open(path)


@pytest.mark.parametrize("kind,size", [("png", "20000x20000"), ("jpeg", "65500x65500")])
def test_load_image_refuses_bombs_before_decoding(bombs, kind, size):
    with pytest.raises(data.ImageTooLargeError) as error:
        data.load_image(bombs[kind])
    assert isinstance(error.value, ValueError)
    assert_names_bomb(str(error.value), bombs[kind], size)


@pytest.mark.parametrize("check", ["verify", "decode", "none"])
@pytest.mark.parametrize("kind,size", [("png", "20000x20000"), ("jpeg", "65500x65500")])
def test_image_problem_reports_bombs_in_every_check_mode(bombs, kind, size, check):
    for source in (bombs[kind], bombs[kind].read_bytes()):
        problem = data.image_problem(source, check)
        assert size in problem and LIMIT_TEXT in problem


def test_header_size_agrees_with_pil_on_real_photos():
    """The header reader against PIL's parser, on every committed photo."""
    for path in PNGS + JPEGS:
        with Image.open(path) as image:
            expected = image.size
        assert data.header_size(path) == expected
        assert data.header_size(path.read_bytes()) == expected


def test_header_size_walks_past_a_large_exif_segment():
    assert data.header_size(jpeg_bomb(300, 200, exif=60000)) == (300, 200)
    assert data.header_size(b"GIF89a" + bytes(20)) is None  # not JPEG/PNG
    assert data.header_size(jpeg_bomb()[:10]) is None  # cut before the frame header
    assert data.header_size(b"\x89PNG\r\n\x1a\n\x00") is None


def test_check_image_size_limit_is_inclusive():
    side = int(data.MAX_IMAGE_PIXELS ** 0.5)
    assert side * side == data.MAX_IMAGE_PIXELS
    data.check_image_size(side, side)
    with pytest.raises(data.ImageTooLargeError, match=f"{side + 1}x{side}") as error:
        data.check_image_size(side + 1, side, name="a.png")
    assert str(error.value).startswith("a.png: ")
    assert error.value.reason == str(error.value).removeprefix("a.png: ")


@pytest.mark.parametrize("width,height", [
    (9000, 9000),    # over tflbnn's limit, under PIL's warning threshold
    (12000, 12000),  # PIL warns
    (20000, 20000),  # PIL raises DecompressionBombError
])
def test_other_formats_are_refused_through_pil(tmp_path, width, height):
    path = tmp_path / "huge.bmp"
    path.write_bytes(bmp_header(width, height))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would fail the test
        with pytest.raises(data.ImageTooLargeError) as error:
            data.load_image(path)
    assert str(path) in str(error.value) and LIMIT_TEXT in str(error.value)


@pytest.mark.parametrize("check", ["verify", "none"])
def test_image_folder_scan_refuses_a_bomb_before_training(tmp_path, bombs, check):
    root = tmp_path / "train"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        shutil.copy(PNGS[0], root / name / "ok.png")
    shutil.copy(bombs["png"], root / "dog" / "huge.png")
    with pytest.raises(ValueError) as error:
        data.scan_image_folder(root, check=check)
    assert_names_bomb(str(error.value), root / "dog" / "huge.png", "20000x20000")
    with pytest.warns(UserWarning, match="huge.png"):
        folder = data.scan_image_folder(root, check=check, skip_invalid=True)
    assert len(folder) == 2


def write_records(path: Path, examples: list[bytes]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example)


def example(image: bytes | None, label: int | None) -> bytes:
    feature = {}
    if image is not None:
        feature["image/encoded"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    if label is not None:
        feature["image/class/label"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_tfrecord_scan_refuses_a_bomb_by_record(tmp_path, bombs):
    path = tmp_path / "bombs.tfrecord"
    good = PNGS[0].read_bytes()
    bomb = bombs["jpeg"].read_bytes()
    write_records(path, [example(good, 0), example(good, 1), example(bomb, 0)])
    with pytest.raises(ValueError) as error:
        data.scan_tfrecords(path, num_classes=2)
    assert_names_bomb(str(error.value), f"{path}, record 2", "65500x65500")


def test_tf_decoding_refuses_a_bomb_that_no_scan_checked(tmp_path, bombs):
    """The in-graph guard: no 1.2 GB allocation, an error naming the file and the limit."""
    source = data.file_source([str(PNGS[0]), str(bombs["png"])], [0, 1])
    iterator = iter(source)
    image, _ = next(iterator)  # a normal image still decodes as load_image does
    expected = data.load_image(PNGS[0])
    np.testing.assert_array_equal(data.convert_channels(image, expected.shape[-1]), expected)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        next(iterator)
    message = error.value.message
    assert str(bombs["png"]) in message and "400000000" in message
    assert str(data.MAX_IMAGE_PIXELS) in message
    path = tmp_path / "bomb.tfrecord"
    write_records(path, [example(bombs["png"].read_bytes(), 0)])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(data.tfrecord_source(path))
    assert str(path) in error.value.message and "400000000" in error.value.message


# --------------------------------------------------------------------- CLI: train


def write_config(tmp_path: Path, data_lines: str) -> Path:
    config = tmp_path / "run.toml"
    config.write_text(f"""
name = "bad-data"
output_dir = "{tmp_path / 'out'}"
[model]
name = "reactnet_resnet18"
width = 0.125
stem = "small"
[data]
{data_lines}
[recipe]
kind = "float"
batch_size = 2
epochs = 1
""")
    return config


def run_cli(capsys, argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


def test_train_on_an_image_folder_with_a_bomb_fails_before_training(tmp_path, bombs, capsys):
    root = tmp_path / "images"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        shutil.copy(PNGS[0], root / name / "ok.png")
    shutil.copy(bombs["png"], root / "cat" / "huge.png")
    config = write_config(tmp_path, f"""kind = "image_folder"
train_dir = "{root}"
test_dir = "{root}"
image_size = [16, 16]
check = "none"
""")
    code, output = run_cli(capsys, ["train", config])
    assert code == 2
    assert_names_bomb(output, root / "cat" / "huge.png", "20000x20000")
    assert not (tmp_path / "out" / "bad-data").exists()


def test_data_spec_error_in_a_config_names_the_key(tmp_path, capsys):
    config = write_config(tmp_path, 'kind = "fashion_mnist"\nsource = "embedded"\n'
                                    'limit_train = -5')
    code, output = run_cli(capsys, ["train", config])
    assert code == 2
    assert "'limit_train'" in output and "-5" in output
    assert not (tmp_path / "out" / "bad-data").exists()


# ------------------------------------------------------------------------------------- IDX


def idx_bytes(code: int, shape: tuple[int, ...], body: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + body


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return path


def test_idx_with_zero_images_says_so(tmp_path):
    images = write(tmp_path / "empty-images-idx3-ubyte", idx_bytes(0x08, (0, 28, 28), b""))
    labels = write(tmp_path / "empty-labels-idx1-ubyte", idx_bytes(0x08, (0,), b""))
    with pytest.raises(ValueError, match="holds no images") as error:
        data.load_idx_pair(images, labels)
    assert str(images) in str(error.value)


def test_idx_with_empty_image_dimension(tmp_path):
    images = write(tmp_path / "flat-idx3-ubyte", idx_bytes(0x08, (2, 0, 28), b""))
    labels = write(tmp_path / "labels-idx1-ubyte", idx_bytes(0x08, (2,), bytes(2)))
    with pytest.raises(ValueError, match="empty dimension") as error:
        data.load_idx_pair(images, labels)
    assert str(images) in str(error.value)


@pytest.mark.parametrize("name", ["huge-idx3-ubyte", "huge-idx3-ubyte.gz"])
def test_idx_header_claiming_a_huge_array_is_truncated_not_allocated(tmp_path, name):
    # 2^32-1 cubed bytes would overflow int64 and could never be allocated.
    path = write(tmp_path / name, idx_bytes(0x08, (2**32 - 1,) * 3, bytes(100)))
    with pytest.raises(ValueError, match="truncated") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content,message", [
    (b"\x12\x34\x08\x01" + bytes(8), "bad IDX magic"),
    (b"\x00\x00\x42\x01" + bytes(8), "unknown IDX dtype"),
    (idx_bytes(0x08, (3, 2, 2), bytes(11)), "truncated"),
    (idx_bytes(0x08, (3, 2, 2), bytes(13)), "trailing"),
])
def test_idx_spec_errors_name_the_file(tmp_path, content, message):
    good_images = write(tmp_path / "ok-images", idx_bytes(0x08, (3, 2, 2), bytes(12)))
    good_labels = write(tmp_path / "ok-labels", idx_bytes(0x08, (3,), bytes([0, 1, 1])))
    bad = write(tmp_path / "bad-images", content)
    spec = {"kind": "idx", "train_images": str(bad), "train_labels": str(good_labels),
            "test_images": str(good_images), "test_labels": str(good_labels)}
    with pytest.raises(ValueError, match=message) as error:
        data.load_data(spec)
    assert str(bad) in str(error.value)


def test_idx_label_count_mismatch_names_both_files(tmp_path):
    images = write(tmp_path / "images", idx_bytes(0x08, (3, 2, 2), bytes(12)))
    labels = write(tmp_path / "labels", idx_bytes(0x08, (2,), bytes(2)))
    with pytest.raises(ValueError, match="3 images but .* 2 labels") as error:
        data.load_idx_pair(images, labels)
    assert str(images) in str(error.value) and str(labels) in str(error.value)


def test_idx_bad_gzip_names_the_file(tmp_path):
    path = tmp_path / "random.gz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a valid gzip file") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


# -------------------------------------------------------------------------------- TFRecord


@pytest.fixture
def good_records(tmp_path):
    path = tmp_path / "good.tfrecord"
    image = PNGS[0].read_bytes()
    write_records(path, [example(image, i % 2) for i in range(5)])
    return path


def record_offsets(path: Path) -> list[int]:
    """Start of each record: length (8) + length CRC (4) + data + data CRC (4)."""
    content, offsets, at = path.read_bytes(), [], 0
    while at < len(content):
        offsets.append(at)
        at += 16 + struct.unpack("<Q", content[at:at + 8])[0]
    return offsets


def test_truncated_tfrecord_names_file_and_record(good_records):
    content = good_records.read_bytes()
    last = record_offsets(good_records)[4]
    good_records.write_bytes(content[:last + 30])
    with pytest.raises(ValueError, match="record 4") as error:
        data.scan_tfrecords(good_records)
    assert str(good_records) in str(error.value)


def test_corrupt_tfrecord_names_file_and_record(good_records):
    content = bytearray(good_records.read_bytes())
    third = record_offsets(good_records)[2]
    content[third + 40] ^= 0xFF  # inside the record's data: its CRC no longer matches
    good_records.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="record 2") as error:
        data.scan_tfrecords(good_records)
    assert str(good_records) in str(error.value)


def test_tfrecord_record_that_is_not_an_example(tmp_path):
    path = tmp_path / "junk.tfrecord"
    image = PNGS[0].read_bytes()
    write_records(path, [example(image, 0), b"\xff\xff\xff not a protobuf"])
    with pytest.raises(ValueError, match="record 1") as error:
        data.scan_tfrecords(path)
    assert str(path) in str(error.value)


def test_empty_tfrecord_file_is_refused(tmp_path):
    path = tmp_path / "empty.tfrecord"
    write_records(path, [])
    assert path.stat().st_size == 0
    with pytest.raises(ValueError, match="holds no records") as error:
        data.scan_tfrecords(path)
    assert str(path) in str(error.value)


def test_corrupt_tfrecord_message_has_no_tf_internals(good_records):
    content = bytearray(good_records.read_bytes())
    content[record_offsets(good_records)[2] + 40] ^= 0xFF
    good_records.write_bytes(bytes(content))
    with pytest.raises(ValueError) as error:
        data.scan_tfrecords(good_records)
    assert "function_node" not in str(error.value) and "[Op:" not in str(error.value)


@pytest.mark.parametrize("image,label,message", [
    (None, 0, "no \\(or empty\\) 'image/encoded'"),
    (b"", 0, "no \\(or empty\\) 'image/encoded'"),
    ("png", None, "no 'image/class/label'"),
    (b"plain text, not an image", 0, "not a JPEG or PNG"),
])
def test_tfrecord_missing_or_bad_features_name_the_record(tmp_path, image, label, message):
    path = tmp_path / "features.tfrecord"
    good = PNGS[0].read_bytes()
    write_records(path, [example(good, 0), example(good if image == "png" else image, label)])
    with pytest.raises(ValueError, match=message) as error:
        data.scan_tfrecords(path)
    assert f"{path}, record 1" in str(error.value)


# ---------------------------------------------------------------------------- image folders


def make_folder(root: Path, classes=("cat", "dog")) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        shutil.copy(PNGS[0], root / name / "a.png")
    return root


def test_folder_without_classes(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "loose.png").write_bytes(PNGS[0].read_bytes())
    with pytest.raises(ValueError, match="no class sub-folders") as error:
        data.scan_image_folder(tmp_path / "root")
    assert str(tmp_path / "root") in str(error.value)


def test_folder_with_an_empty_class(tmp_path):
    root = make_folder(tmp_path / "root")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="class 'empty' has no images"):
        data.scan_image_folder(root)


@pytest.mark.parametrize("content,problem", [
    (b"plain text with a .png name", "cannot decode"),
    (None, "cannot decode"),  # a PNG cut in half
    ("gif", "format GIF is not supported"),
])
def test_folder_with_a_bad_image_names_it(tmp_path, content, problem):
    root = make_folder(tmp_path / "root")
    bad = root / "dog" / "bad.png"
    if content is None:
        bad.write_bytes(PNGS[0].read_bytes()[:200])
    elif content == "gif":
        Image.new("P", (4, 4)).save(bad, format="GIF")
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as error:
        data.scan_image_folder(root)
    assert str(bad) in str(error.value)


@pytest.mark.parametrize("where", ["class", "image"])
def test_folder_with_a_symlink_loop_names_it(tmp_path, where):
    root = make_folder(tmp_path / "root")
    if where == "class":
        link = root / "bird"
    else:
        link = root / "dog" / "loop.png"
    os.symlink(link.name + "-2", link)
    os.symlink(link.name, link.with_name(link.name + "-2"))
    with pytest.raises(ValueError, match="symlink loop") as error:
        data.scan_image_folder(root)
    assert str(link) in str(error.value) or str(link) + "-2" in str(error.value)


def test_folder_that_is_a_file(tmp_path):
    path = tmp_path / "images"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file") as error:
        data.scan_image_folder(path)
    assert str(path) in str(error.value)


def test_skipping_every_image_of_a_class_is_an_error(tmp_path):
    root = make_folder(tmp_path / "root")
    (root / "dog" / "a.png").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="skipped 1 invalid"):
        with pytest.raises(ValueError, match=r"no valid images left in class\(es\) \['dog'\]"):
            data.scan_image_folder(root, skip_invalid=True)


# ------------------------------------------------------------------------------- data specs


FASHION = {"kind": "fashion_mnist", "source": "embedded"}
FOLDER = {"kind": "image_folder", "train_dir": "t", "test_dir": "v", "image_size": [8, 8]}
RECORDS = {"kind": "tfrecord", "train_files": "t", "test_files": "v", "labels": ["a", "b"],
           "image_size": [8, 8]}


@pytest.mark.parametrize("base,key,value", [
    (FASHION, "limit_train", -5),
    (FASHION, "limit_train", 0),
    (FASHION, "limit_train", 1.5),
    (FASHION, "limit_train", "x"),
    (FASHION, "limit_train", True),
    (FASHION, "limit_test", -1),
    (FASHION, "source", []),
    (FASHION, "source", "internet"),
    (FASHION, "data_dir", 5),
    (FASHION, "kind", 5),
    (FASHION, "kind", "cifar10"),
    (FOLDER, "train_dir", ["a"]),
    (FOLDER, "image_size", [8]),
    (FOLDER, "image_size", [0, 8]),
    (FOLDER, "image_size", "8x8"),
    (FOLDER, "image_size", [100000, 100000]),
    (FOLDER, "channels", 2),
    (FOLDER, "channels", "3"),
    (FOLDER, "center_crop", 0),
    (FOLDER, "center_crop", float("nan")),
    (FOLDER, "mean", "0.5"),
    (FOLDER, "std", [0.2, 0.0, 0.2]),
    (FOLDER, "std", [float("inf")] * 3),
    (FOLDER, "check", "bogus"),
    (FOLDER, "skip_invalid", "yes"),
    (FOLDER, "labels", "abc"),
    (FOLDER, "labels", ["a", 3]),
    (RECORDS, "train_files", []),
    (RECORDS, "label_offset", -1),
    (RECORDS, "label_offset", 0.5),
    (RECORDS, "num_train", 0),
    (RECORDS, "image_key", ""),
])
def test_data_spec_values_of_the_wrong_type_or_range_name_the_key(base, key, value):
    with pytest.raises(ValueError) as error:
        data.load_data({**base, key: value})
    message = str(error.value)
    assert f"'{key}'" in message and repr(value) in message


def test_data_spec_structure_errors():
    with pytest.raises(ValueError, match="must be a table"):
        data.check_data_spec(5)
    with pytest.raises(ValueError, match="'kind'.*no 'kind'"):
        data.check_data_spec({"source": "embedded"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['limit'\]"):
        data.check_data_spec({**FASHION, "limit": 3})
    with pytest.raises(ValueError, match="missing the key 'labels'"):
        data.check_data_spec({key: v for key, v in RECORDS.items() if key != "labels"})


@pytest.mark.parametrize("spec", [FASHION, FOLDER, RECORDS,
                                  {"kind": "idx", "train_images": "a", "train_labels": "b",
                                   "test_images": "c", "test_labels": "d"}])
def test_check_data_spec_fills_defaults_that_pass_their_own_checks(spec):
    filled = data.check_data_spec(spec)
    assert set(spec) < set(filled)
    assert data.check_data_spec(filled) == filled
