"""The README's Python quickstart runs as written (on a smaller slice of the embedded data)."""

import re
from pathlib import Path

import tflbnn  # noqa: F401  (selects Keras 2 first)
import tensorflow as tf

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    text = README.read_text()
    section = text.split("## Quickstart in Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_quickstart_runs(tmp_path, monkeypatch, spread, test_seed):
    """Trains one epoch (seeded by the test seed, op determinism, pinned threads: one machine
    always gets the same model) and converts it with the README's own parity check, 99 % top-1
    agreement on 200 images, which the test cannot loosen. Measured over seeds 0-4, seed 0 at 1
    and 2 threads (tests/spread_measurements.json): 99.5-100 % (one flip at seed 4), so the
    check has a margin of one near-tie image beyond the worst seed measured; the default seed
    gives 100 %."""
    code = quickstart_code()
    spec = '{"kind": "fashion_mnist", "source": "embedded"}'
    assert spec in code and "epochs=2" in code and "limit=500" in code
    # Same code, less data and time: 512 training images, 1 epoch, 200 parity images.
    code = (code.replace(spec, '{"kind": "fashion_mnist", "source": "embedded", '
                               '"limit_train": 512, "limit_test": 256}')
                .replace("epochs=2", "epochs=1").replace("limit=500", "limit=200"))
    monkeypatch.chdir(tmp_path)
    # After one epoch on 512 images many logits are near ties, so an unseeded run can miss the
    # 99% parity threshold by one image in 200; a fixed seed keeps the check repeatable.
    tf.keras.utils.set_random_seed(test_seed)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    report = namespace["report"]
    spread("top1_agreement", report.parity.top1_agreement)
    assert report.coverage.complete
    assert report.parity is not None and report.parity.passed
    for name in ("model.tflite", "model.float.tflite", "model.json"):
        assert (tmp_path / "quickstart" / name).is_file()
