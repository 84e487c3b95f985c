#!/usr/bin/env python
"""Measure the spread of the test suite's statistical assertions over seeds and threads.

Runs pytest on the given tests once per (seed, thread count), with ``TFLBNN_TEST_SEED`` and
``TFLBNN_TEST_THREADS`` set (tests/conftest.py), and collects every value the tests record
through the ``spread`` fixture, pass or fail. The values are merged into a JSON file (by
default ``tests/spread_measurements.json``): a later run of other tests adds to it, a rerun of
the same test, seed and thread count replaces its values. The summary printed at the end (and
by ``--summary``) gives each statistic's range, the figures quoted in the tests' docstrings.

Usage::

    python scripts/measure_test_spread.py tests/test_n2uq_int8.py -k "agreement or ranges"
    python scripts/measure_test_spread.py --seeds 0-4 --threads 1,2 tests/test_bimlp.py
    python scripts/measure_test_spread.py --summary

Arguments after the options go to pytest as they are. Run it with ``nice`` on a shared machine:
each (seed, threads) pair retrains the tests' fixtures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "tests" / "spread_measurements.json"


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` or ``"0,2,7"`` to a list of seeds.

    Raises:
        argparse.ArgumentTypeError: for anything else.
    """
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: want e.g. 0-4 or 0,2,7") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: want non-negative seeds")
    return seeds


def parse_threads(text: str) -> list[int]:
    """``"1,2"`` to a list of thread counts.

    Raises:
        argparse.ArgumentTypeError: for anything but positive integers.
    """
    try:
        threads = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads {text!r}: want e.g. 1,2") from None
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"--threads {text!r}: want positive thread counts")
    return threads


def run_once(pytest_args: list[str], seed: int, threads: int,
             log_dir: Path | None = None) -> tuple[dict, list[dict]]:
    """Run pytest once; return the run's record and the values its tests recorded.

    With ``log_dir``, pytest's output is kept there as ``seed<S>_threads<T>.log``."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "spread.jsonl"
        environment = dict(os.environ, TFLBNN_TEST_SEED=str(seed),
                           TFLBNN_TEST_THREADS=str(threads), TFLBNN_TEST_SPREAD_LOG=str(log))
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
            cwd=ROOT, env=environment, capture_output=True, text=True)
        seconds = time.monotonic() - started
        values = ([json.loads(line) for line in log.read_text().splitlines()]
                  if log.exists() else [])
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"seed{seed}_threads{threads}.log").write_text(completed.stdout
                                                                  + completed.stderr)
    lines = completed.stdout.strip().splitlines()
    run = {"seed": seed, "threads": threads, "exit_code": completed.returncode,
           "seconds": round(seconds, 1), "result": lines[-1] if lines else "",
           "pytest_args": pytest_args}
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    if failures:
        run["failures"] = failures
    return run, values


def merge(measurements: dict, run: dict, values: list[dict]) -> None:
    """Add one run's values, replacing earlier ones of the same test, name, seed and threads."""
    fresh = {(row["test"], row["name"], row["seed"], row["threads"]) for row in values}
    measurements["values"] = [
        row for row in measurements.get("values", [])
        if (row["test"], row["name"], row["seed"], row["threads"]) not in fresh] + values
    measurements.setdefault("runs", []).append(run)


def summary(measurements: dict) -> str:
    """A Markdown table: per test and statistic, the range over seeds and threads."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in measurements.get("values", []):
        grouped.setdefault((row["test"], row["name"]), []).append(row)
    lines = ["| test | statistic | runs | seeds | threads | min | max |",
             "|---|---|---|---|---|---|---|"]
    for (test, name), rows in sorted(grouped.items()):
        values = [row["value"] for row in rows]
        seeds = sorted({row["seed"] for row in rows})
        threads = sorted({row["threads"] for row in rows})
        lines.append(f"| {test} | {name} | {len(rows)} | {_span(seeds)} | "
                     f"{','.join(map(str, threads))} | {min(values):.4g} | {max(values):.4g} |")
    return "\n".join(lines)


def _span(numbers: list[int]) -> str:
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"{numbers[0]}-{numbers[-1]}"
    return ",".join(map(str, numbers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"),
                        help="test seeds: a range 0-4 (default) or a list 0,2,7")
    parser.add_argument("--threads", type=parse_threads, default=parse_threads("1,2"),
                        help="TensorFlow and interpreter thread counts (default 1,2)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file to merge into (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--log-dir", type=Path,
                        help="keep each run's pytest output in this folder")
    parser.add_argument("--summary", action="store_true",
                        help="only print the summary of --output")
    options, pytest_args = parser.parse_known_args(argv)
    measurements = (json.loads(options.output.read_text()) if options.output.exists()
                    else {"values": [], "runs": []})
    if not options.summary:
        if not pytest_args:
            parser.error("name the tests to measure (pytest arguments)")
        for seed in options.seeds:
            for threads in options.threads:
                run, values = run_once(pytest_args, seed, threads, options.log_dir)
                print(f"seed {seed}, {threads} thread(s): {run['result']} ({run['seconds']} s, "
                      f"{len(values)} values)", flush=True)
                merge(measurements, run, values)
                # After every run: an interrupted measurement keeps what it measured.
                options.output.write_text(json.dumps(measurements, indent=1) + "\n")
    print(summary(measurements))
    return 0


if __name__ == "__main__":
    sys.exit(main())
