"""Where the benchmark scripts put their results, and the one writer of their table files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tflbnn.metadata import write_bytes_atomic

#: benchmarks/results/: tables, JSON and plots that the README quotes.
RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, make_target: str, header: str, table: str, data: Any) -> None:
    """Print a benchmark's table and write ``results/<name>.md`` and ``results/<name>.json``.

    Both files are written atomically; the Markdown names the command that made it.

    Args:
        name: the script's name without ``.py`` (also the files' stem).
        make_target: the Makefile target that runs the script.
        header: one paragraph saying what was measured.
        table: the Markdown table(s).
        data: everything measured, JSON-serialisable (other values are written as strings).
    """
    print(header)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(RESULTS / f"{name}.md", (
        f"{header}\n\nCommand: `make {make_target}` "
        f"(= `python benchmarks/{name}.py`)\n\n{table}\n").encode())
    write_bytes_atomic(RESULTS / f"{name}.json",
                       json.dumps(data, indent=2, default=str).encode())
