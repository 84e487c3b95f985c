"""Bad input gets a clear refusal: the reliability suite of issue 17.

``scripts/make_bad_inputs.py`` writes a corpus of bad inputs (truncated, random, bit-flipped and
hostile model files, bad sidecars, image bombs, malformed IDX/TFRecord/image folders, wrongly
typed configs, unwritable outputs, bad options) for every ``tflbnn`` command and the public
loaders. Each case runs in-process (``tflbnn.cli.main`` or the loader) in an empty working
folder with its own temporary folder, and must:

* fail: exit code != 0 (a loader raises its documented ``ValueError``/``FileNotFoundError``);
* show no traceback: nothing else escapes, no "Traceback" is printed;
* say what and why: the message holds a word of each of the case's groups (the input's
  file, field or option, then the problem);
* leave nothing behind: the corpus, the base models, the working folder and the temporary
  folder hold the same files before and after;
* run no code: no hostile payload left its file under ``executed/``.

Cases are grouped by entry point (``test_bad_inputs[classify]`` ...), so one entry point can be
rerun with ``-k``; ``test_summary`` prints the totals as "N cases, N clear errors, N tracebacks,
N leftovers, N accepted". A few cases also run as real ``python -m tflbnn.cli`` processes to
check the exit code and the stderr path end to end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from tflbnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_bad_inputs",
                                               ROOT / "scripts" / "make_bad_inputs.py")
make_bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("make_bad_inputs", make_bad_inputs)  # dataclasses look the module up
_spec.loader.exec_module(make_bad_inputs)

#: Entry points, one test each: the nine commands, argparse-level cases and the loaders.
GROUPS = ("demo", "train", "search", "convert", "bench", "classify", "models", "app-model",
          "app-golden", "tflbnn", "load_keras_model", "TFLiteClassifier", "ModelMetadata.load",
          "load_data", "load_image", "read_idx", "load_idx_pair", "scan_tfrecords",
          "scan_image_folder")

#: Seconds a case may run. Refusing bad input takes well under a second; a case that runs
#: longer has started the work (training, converting, timing) instead of refusing first.
CASE_TIMEOUT_S = 60

#: What a loader may raise for bad input (its docstring's Raises).
LOADER_ERRORS = (ValueError, FileNotFoundError)


def _loaders() -> dict:
    from tflbnn.classifier import TFLiteClassifier
    from tflbnn.data import (load_data, load_idx_pair, load_image, read_idx, scan_image_folder,
                             scan_tfrecords)
    from tflbnn.metadata import ModelMetadata
    from tflbnn.model_files import load_keras_model

    return {"load_keras_model": load_keras_model, "TFLiteClassifier": TFLiteClassifier,
            "ModelMetadata.load": ModelMetadata.load, "load_data": load_data,
            "load_image": load_image, "read_idx": read_idx, "load_idx_pair": load_idx_pair,
            "scan_tfrecords": scan_tfrecords, "scan_image_folder": scan_image_folder}


class CaseTimeout(BaseException):
    """Raised by the alarm in a case that runs past CASE_TIMEOUT_S (not an Exception, so no
    ``except Exception`` in tflbnn swallows it)."""


@dataclasses.dataclass
class Outcome:
    """What one case did.

    Attributes:
        case: the case.
        exit_code: the CLI's exit code (0 when a loader returned, 2 when it raised its
            documented error), ``None`` when an exception escaped or the case timed out.
        escaped: ``"TypeError: ..."`` when an exception escaped ``main``/the loader.
        timed_out: the case ran past ``CASE_TIMEOUT_S``.
        output: everything printed (stdout + stderr), or the loader's error message.
        leftovers: paths added, removed or changed.
        executed: marker files that hostile payloads left.
    """

    case: object
    exit_code: int | None
    escaped: str | None
    timed_out: bool
    output: str
    leftovers: list[str]
    executed: list[str]

    @property
    def traceback(self) -> bool:
        return self.escaped is not None or "Traceback (most recent call last)" in self.output

    @property
    def accepted(self) -> bool:
        return self.exit_code == 0 or self.timed_out

    @property
    def missing_words(self) -> list[list[str]]:
        text = self.output.lower()
        return [group for group in self.case.words
                if not any(word.lower() in text for word in group)]

    @property
    def clear(self) -> bool:
        return (not self.traceback and not self.accepted and self.exit_code is not None
                and not self.leftovers and not self.executed and not self.missing_words)

    def describe(self) -> str:
        case = self.case
        what = (f"tflbnn {' '.join(case.argv)}" if case.argv is not None
                else f"{case.loader}(*{case.args!r}, **{case.kwargs!r})")
        problems = []
        if self.timed_out:
            problems.append(f"still running after {CASE_TIMEOUT_S} s (not refused up front)")
        elif self.exit_code == 0:
            problems.append("accepted (exit 0)" if case.argv is not None else "accepted")
        if self.escaped:
            problems.append(f"traceback: {self.escaped}")
        elif self.traceback:
            problems.append("traceback printed")
        if self.leftovers:
            problems.append(f"left behind: {self.leftovers[:4]}")
        if self.executed:
            problems.append(f"CODE EXECUTED: {self.executed}")
        if not problems and self.missing_words:
            problems.append(f"message lacks one of each of {self.missing_words}")
        tail = " ".join(self.output.split())[-300:]
        return f"{case.id} [{case.area}]: {'; '.join(problems)}\n    {what}\n    said: {tail}"


#: Files TensorFlow's autograph writes to the temporary folder for each converted function and
#: deletes at interpreter exit (atexit): not the case's leftovers, since a real run removes them.
_AUTOGRAPH_FILES = re.compile(r"__autograph_generated_file\w+\.py")


def _snapshot(roots: list[Path]) -> dict[str, tuple]:
    """Path -> (type, size, content digest or mtime) of every file and folder under ``roots``.

    The same file rewritten with the same bytes is no change; large files (the sparse 2 GiB
    one) are compared by mtime; a folder by its existence (its files speak for its content).
    """
    files = {}
    for root in roots:
        for folder, dirs, names in os.walk(root):
            for name in dirs + names:
                path = Path(folder) / name
                stat = path.lstat()
                if name in dirs and not path.is_symlink():
                    files[str(path)] = ("folder",)
                elif _AUTOGRAPH_FILES.fullmatch(name):
                    continue
                elif stat.st_size <= 4 << 20 and path.is_file() and not path.is_symlink():
                    content = hashlib.sha256(path.read_bytes()).hexdigest()
                    files[str(path)] = (stat.st_mode >> 12, stat.st_size, content)
                else:
                    files[str(path)] = (stat.st_mode >> 12, stat.st_size, stat.st_mtime_ns)
    return files


def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(case, corpus: "Corpus") -> Outcome:
    """Run one case in its own empty working and temporary folders."""
    slug = case.id.replace("/", "__")
    work = corpus.work / slug
    temp = corpus.temp / slug
    work.mkdir(parents=True)
    temp.mkdir(parents=True)
    roots = [corpus.corpus, corpus.base, work, temp]
    before = _snapshot(roots)
    out, err = io.StringIO(), io.StringIO()
    exit_code, escaped, timed_out, message = None, None, False, ""
    previous = (os.getcwd(), tempfile.tempdir, os.environ.get("TMPDIR"))
    handler = signal.signal(signal.SIGALRM, _alarm)
    os.chdir(work)
    tempfile.tempdir = str(temp)
    os.environ["TMPDIR"] = str(temp)
    try:
        signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if case.argv is not None:
                try:
                    exit_code = main(case.argv)
                except SystemExit as stop:  # argparse: usage errors and --help
                    exit_code = stop.code if isinstance(stop.code, int) else (
                        0 if stop.code is None else 1)
            else:
                try:
                    corpus.loaders[case.loader](*case.args, **case.kwargs)
                    exit_code = 0
                except LOADER_ERRORS as error:
                    exit_code, message = 2, f"{type(error).__name__}: {error}"
    except CaseTimeout:
        timed_out = True
    except BaseException as error:  # noqa: BLE001  (the case's failure, reported below)
        escaped = f"{type(error).__name__}: {error}"[:500]
        message = "".join(traceback.format_exception(error))[-2000:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        os.chdir(previous[0])
        tempfile.tempdir = previous[1]
        if previous[2] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous[2]
    after = _snapshot(roots)
    leftovers = sorted(path for path in before.keys() | after.keys()
                       if before.get(path) != after.get(path))
    executed = sorted(path.name for path in corpus.markers.iterdir())
    # Undo what the case added so the next case starts from the same corpus.
    for path in sorted(set(after) - set(before), reverse=True):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    for marker in corpus.markers.iterdir():
        marker.unlink()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(temp, ignore_errors=True)
    return Outcome(case, exit_code, escaped, timed_out,
                   "\n".join(part for part in (out.getvalue(), err.getvalue(), message) if part),
                   leftovers, executed)


@dataclasses.dataclass
class Corpus:
    root: Path
    base: Path
    corpus: Path
    work: Path
    temp: Path
    cases: list
    loaders: dict
    outcomes: dict = dataclasses.field(default_factory=dict)

    @property
    def markers(self) -> Path:
        return self.corpus / make_bad_inputs.MARKER_DIR

    def group(self, name: str) -> list:
        return [case for case in self.cases if case.id.split("/")[0] == name]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("reliability")
    base = make_bad_inputs.make_base(root / "base")
    cases = make_bad_inputs.make_corpus(root / "corpus", base)
    return Corpus(root=root, base=base, corpus=root / "corpus", work=root / "work",
                  temp=root / "temp", cases=cases, loaders=_loaders())


def test_corpus_covers_every_command_and_loader(corpus):
    groups = {case.id.split("/")[0] for case in corpus.cases}
    assert groups == set(GROUPS)
    assert len(corpus.cases) >= 200
    assert corpus.markers.is_dir() and not any(corpus.markers.iterdir())
    for case in corpus.cases:
        assert case.words and all(case.words), f"{case.id}: no words to check"


def test_the_valid_inputs_the_corpus_mutates_are_accepted(corpus, tmp_path, capsys):
    """The base files and configs work, so each case's refusal comes from its one mutation."""
    from tflbnn.commands.search import load_search_config
    from tflbnn.experiment import load_config

    base, root = corpus.base, corpus.corpus
    loaders = corpus.loaders
    assert loaders["load_keras_model"](base / "model.keras").output_shape == (None, 10)
    tflite = base / "conv" / "model.tflite"
    assert loaders["TFLiteClassifier"](tflite).metadata.labels == tuple(make_bad_inputs.LABELS)
    assert loaders["load_image"](base / "photo.png").shape == (16, 16, 1)
    assert loaders["read_idx"](root / "idx" / "good-images.idx").shape == (20, 16, 16)
    assert loaders["scan_tfrecords"](str(root / "tfrecord" / "good.tfrecord"),
                                     num_classes=10) == 4
    assert len(loaders["scan_image_folder"](root / "image_folders" / "good")) == 2
    config = load_config(root / "configs" / "valid_for_options.toml")
    assert config.data["kind"] == "fashion_mnist" and config.recipe["epochs"] == 1
    assert load_search_config(root / "search_configs" / "valid.toml").search["population"] == 4
    assert main(["classify", str(base / "photo.png"), "--model", str(tflite)]) == 0
    assert main(["app-model", str(tflite), "--app-dir", str(tmp_path / "app")]) == 2
    shutil.copytree(base / "app", tmp_path / "app")
    assert main(["app-model", str(tflite), "--app-dir", str(tmp_path / "app")]) == 0
    assert main(["models", "reactnet_a", "--input-shape", "32,32,1", "--num-classes", "10",
                 "-o", "width=0.25"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("group", GROUPS)
def test_bad_inputs(corpus, group):
    cases = corpus.group(group)
    assert cases, f"no cases for {group}"
    outcomes = [run_case(case, corpus) for case in cases]
    corpus.outcomes.update((outcome.case.id, outcome) for outcome in outcomes)
    failed = [outcome for outcome in outcomes if not outcome.clear]
    assert not failed, (f"{len(failed)} of {len(cases)} {group} case(s) not refused cleanly:\n"
                        + "\n".join(outcome.describe() for outcome in failed))


#: Cases also run as real processes: the exit code and stderr of the installed CLI.
SUBPROCESS_CASES = ("classify/image_png_bomb", "convert/keras_lambda_keras",
                    "bench/json_under_a_file", "models/width_abc",
                    "train/unknown_option")


def test_cli_processes_exit_2_with_a_message_and_no_traceback(corpus):
    cases = {case.id: case for case in corpus.cases}
    chosen = [cases[case_id] for case_id in SUBPROCESS_CASES if case_id in cases]
    assert len(chosen) == len(SUBPROCESS_CASES), sorted(set(SUBPROCESS_CASES) - set(cases))
    problems = []
    for case in chosen:
        work = corpus.work / ("process_" + case.id.replace("/", "__"))
        work.mkdir(parents=True)
        result = subprocess.run([sys.executable, "-m", "tflbnn.cli", *case.argv], cwd=work,
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        said = result.stderr.lower()
        command = case.argv[0] if case.argv else ""
        prefix = f"tflbnn {command}: error:" if "unknown_option" not in case.id else "usage:"
        missing = [group for group in case.words if not any(w.lower() in said for w in group)]
        if (result.returncode != 2 or "Traceback" in result.stderr + result.stdout
                or prefix not in result.stderr or missing or any(work.iterdir())
                or any(corpus.markers.iterdir())):
            problems.append(f"{case.id}: exit {result.returncode}, missing {missing}, left "
                            f"{[p.name for p in work.iterdir()]}, stderr: "
                            f"{result.stderr[-600:]}")
        shutil.rmtree(work, ignore_errors=True)
    assert not problems, "\n".join(problems)


def test_summary(corpus, request):
    """The totals the issue's closing note quotes; every case that ran must be clear."""
    outcomes = list(corpus.outcomes.values())
    if not outcomes:
        pytest.skip("no bad-input group ran (deselected)")
    totals = {
        "cases": len(outcomes),
        "clear errors": sum(outcome.clear for outcome in outcomes),
        "tracebacks": sum(outcome.traceback for outcome in outcomes),
        "leftovers": sum(bool(outcome.leftovers) for outcome in outcomes),
        "accepted": sum(outcome.accepted for outcome in outcomes),
    }
    unclear = sum(not outcome.traceback and not outcome.accepted and not outcome.leftovers
                  and not outcome.executed and bool(outcome.missing_words)
                  for outcome in outcomes)
    executed = sum(bool(outcome.executed) for outcome in outcomes)
    line = ", ".join(f"{count} {name}" for name, count in totals.items())
    detail = f"({unclear} unclear messages, {executed} executed code, of {len(corpus.cases)} " \
             f"cases in the corpus)"
    report = corpus.root / "reliability_report.json"
    report.write_text(json.dumps({
        "summary": f"{line} {detail}",
        "failed": [outcome.describe() for outcome in outcomes if not outcome.clear],
        "messages": {outcome.case.id: " ".join(outcome.output.split())[-400:]
                     for outcome in outcomes}}, indent=1))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(f"reliability: {line} {detail}; report: {report}")
    print(line, detail)
    assert totals["clear errors"] == totals["cases"], line
