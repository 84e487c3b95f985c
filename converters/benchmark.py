"""Latency of a TFLite model on this machine: LCE interpreter for LCE models, TFLite + XNNPACK
for float and int8 models, and the speed-up of a converted model (LCE or int8) over its float
twin.

On x86 the LCE bconv kernels are portable C++ (no SIMD): the default OPT_BGEMM kernel is ~4×
slower than float XNNPACK while the indirect-BGEMM kernel is faster than float, so indirect
BGEMM is the default here and every result names the kernel it used.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

from tflbnn.converters.flatbuffer import (LCE_BCONV, Source, grouped_bconvs, load_tflite_bytes,
                                          read_tflite)

__all__ = ["KERNELS", "LatencyStats", "Comparison", "benchmark_tflite", "compare",
           "converted_label", "kernel_flags", "time_runs"]

#: CLI kernel names → (use_indirect_bgemm, use_reference_bconv).
KERNELS = {"indirect": (True, False), "default": (False, False), "reference": (False, True)}


def kernel_flags(kernel: str) -> dict[str, bool]:
    """``benchmark_tflite`` keyword flags for a kernel name in ``KERNELS``.

    Raises:
        ValueError: for an unknown kernel name.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown bconv kernel {kernel!r}; choose one of {sorted(KERNELS)}")
    indirect, reference = KERNELS[kernel]
    return {"use_indirect_bgemm": indirect, "use_reference_bconv": reference}


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of single-image inference.

    Attributes:
        source: the model file, or ``"<bytes>"``.
        median_ms: median latency.
        p90_ms: 90th percentile.
        mean_ms: mean.
        min_ms: fastest run.
        runs: timed runs.
        warmup: untimed runs before them.
        num_threads: interpreter threads.
        interpreter: ``"lce"`` or ``"tflite"``.
        kernel: which kernels ran, in words (bconv kernel, XNNPACK).
    """

    source: str
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    warmup: int
    num_threads: int
    interpreter: str
    kernel: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"{self.source}: median {self.median_ms:.3f} ms, p90 {self.p90_ms:.3f} ms, mean "
                f"{self.mean_ms:.3f} ms ({self.runs} runs, {self.num_threads} thread(s); "
                f"{self.kernel})")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A converted model against its float twin; ``speedup`` = float median / converted median.

    Attributes:
        lce: the converted model's latency (an LCE model, or an int8 one: see ``label``).
        float32: the float32 twin's latency.
        label: what the converted model is, as ``converted_label`` names it (``"LCE"``,
            ``"int8"``).
    """

    lce: LatencyStats
    float32: LatencyStats
    label: str = "LCE"

    @property
    def speedup(self) -> float:
        return self.float32.median_ms / self.lce.median_ms

    def as_dict(self) -> dict[str, Any]:
        return {"lce": self.lce.as_dict(), "float32": self.float32.as_dict(),
                "speedup": self.speedup, "label": self.label}

    def summary(self) -> str:
        direction = "faster" if self.speedup >= 1 else "slower"
        factor = self.speedup if self.speedup >= 1 else 1 / self.speedup
        return (f"{self.label:<5} {self.lce.summary()}\nfloat {self.float32.summary()}\n"
                f"{self.label} is {factor:.2f}x {direction} than float (median "
                f"{self.lce.median_ms:.3f} vs {self.float32.median_ms:.3f} ms)")


def converted_label(path_or_bytes: Source) -> str | None:
    """What kind of converted model a flatbuffer is, for latency reports.

    Args:
        path_or_bytes: ``.tflite`` path (read header first, see ``read_tflite_file``), a
            ``TFLiteFile`` already read, or flatbuffer bytes.

    Returns:
        ``"LCE"`` for a model with LCE custom ops, ``"int8"`` for one with int8 tensors (a
        full-integer model, or int8-stored weights), ``None`` for a plain float model.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: if the file is not a TFLite model.
    """
    info = read_tflite(*load_tflite_bytes(path_or_bytes))
    if info.uses_lce_ops:
        return "LCE"
    tensors = (tensor for op in info.ops for tensor in (*op.inputs, *op.outputs))
    if any(tensor is not None and tensor.dtype == "int8" for tensor in tensors):
        return "int8"
    return None


def _lce_kernel_name(use_indirect_bgemm: bool, use_reference_bconv: bool) -> str:
    # Precedence as in RegisterLCECustomOps: reference, then indirect, then the default.
    if use_reference_bconv:
        return "reference (use_reference_bconv=True)"
    if use_indirect_bgemm:
        return "indirect BGEMM (use_indirect_bgemm=True)"
    return "default OPT_BGEMM (ruy; portable C++ on x86)"


def time_runs(run: Callable[[], Any], num_runs: int, warmup: int) -> np.ndarray:
    """Wall-clock times of ``num_runs`` calls of ``run`` after ``warmup`` untimed ones.

    Args:
        run: the call to time, with no arguments.
        num_runs: timed calls.
        warmup: untimed calls first (tracing, allocation, caches).

    Returns:
        float64 ``(num_runs,)`` times in milliseconds, in call order.
    """
    for _ in range(warmup):
        run()
    times = np.empty(num_runs)
    for index in range(num_runs):
        start = time.perf_counter()
        run()
        times[index] = time.perf_counter() - start
    return times * 1e3


def _random_input(shape, dtype) -> np.ndarray:
    # Latency does not depend on the values; a fixed seed keeps runs comparable.
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def benchmark_tflite(
    path_or_bytes: Source,
    *,
    num_runs: int = 50,
    warmup: int = 5,
    num_threads: int = 1,
    use_indirect_bgemm: bool = True,
    use_reference_bconv: bool = False,
    use_xnnpack: bool | None = None,
) -> LatencyStats:
    """Time single-image inference of a TFLite model.

    Models with LCE custom ops run in the LCE interpreter with the chosen bconv kernel; plain
    float models run in ``tf.lite.Interpreter`` with its default delegates (XNNPACK).

    Args:
        path_or_bytes: ``.tflite`` path, a ``TFLiteFile`` (its name is reported) or flatbuffer
            bytes.
        num_runs: timed runs.
        warmup: untimed runs first (allocation, caches, XNNPACK packing).
        num_threads: interpreter threads.
        use_indirect_bgemm: LCE only — the indirect-BGEMM bconv kernel.
        use_reference_bconv: LCE only — the reference bconv kernel (takes precedence).
        use_xnnpack: apply XNNPACK to the float ops; default True for float models and False
            for LCE models (the LCE interpreter's own default).

    Returns:
        ``LatencyStats`` naming the interpreter and kernel used.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: if the file is not a TFLite model, ``num_runs < 1``, or grouped binary
            convolutions meet the default kernel (which rejects them).
    """
    if num_runs < 1 or warmup < 0 or num_threads < 1:
        raise ValueError(f"benchmark_tflite: need num_runs >= 1, warmup >= 0 and num_threads >= 1, "
                         f"got {num_runs}, {warmup}, {num_threads}")
    data, name = load_tflite_bytes(path_or_bytes)
    info = read_tflite(data, name)
    if info.uses_lce_ops:
        xnnpack = bool(use_xnnpack) if use_xnnpack is not None else False
        grouped = grouped_bconvs(info)
        if grouped and not (use_indirect_bgemm or use_reference_bconv):
            raise ValueError(f"{name}: {len(grouped)} grouped {LCE_BCONV} op(s); the default "
                             "bconv kernel rejects grouped convolutions — use the indirect or "
                             "reference kernel")
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        interpreter = Interpreter(data, num_threads=num_threads,
                                  use_reference_bconv=use_reference_bconv,
                                  use_indirect_bgemm=use_indirect_bgemm, use_xnnpack=xnnpack)
        inputs = [_random_input(shape, dtype) for shape, dtype in
                  zip(interpreter.input_shapes, interpreter.input_types)]
        # The wrapper's own predict: Interpreter.predict adds per-call generator/concat overhead.
        native = interpreter.interpreter
        times = time_runs(lambda: native.predict(inputs), num_runs, warmup)
        kernel = (f"LCE interpreter, {LCE_BCONV} kernel: "
                  f"{_lce_kernel_name(use_indirect_bgemm, use_reference_bconv)}, XNNPACK "
                  f"{'on' if xnnpack else 'off'} for float ops")
        interpreter_name = "lce"
    else:
        xnnpack = True if use_xnnpack is None else bool(use_xnnpack)
        resolver = (tf.lite.experimental.OpResolverType.AUTO if xnnpack else
                    tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter = tf.lite.Interpreter(model_content=data, num_threads=num_threads,
                                          experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(detail["shape"], detail["dtype"]))
        # Delegated partitions show up as DELEGATE nodes appended to the execution plan.
        partitions = sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
        times = time_runs(interpreter.invoke, num_runs, warmup)
        if partitions:
            kernel = f"TFLite interpreter, XNNPACK delegate ({partitions} partition(s))"
        else:
            kernel = ("TFLite interpreter, built-in kernels (XNNPACK "
                      f"{'not applied' if xnnpack else 'off'})")
        interpreter_name = "tflite"
    return LatencyStats(
        source=name,
        median_ms=float(np.median(times)),
        p90_ms=float(np.percentile(times, 90)),
        mean_ms=float(times.mean()),
        min_ms=float(times.min()),
        runs=num_runs,
        warmup=warmup,
        num_threads=num_threads,
        interpreter=interpreter_name,
        kernel=kernel,
    )


def compare(lce_model: Source, float_model: Source, **options: Any) -> Comparison:
    """Benchmark a converted model (LCE or int8) and its float twin with the same settings.

    Args:
        lce_model: the converted ``.tflite`` (path or bytes): an LCE model, or an int8 model
            from the N2UQ or S3 path of ``convert_model``.
        float_model: the float32 ``.tflite`` of the same network.
        **options: ``benchmark_tflite`` keywords (``num_runs``, ``num_threads``, kernel flags).
            ``use_xnnpack`` applies to the converted model only; the float model always gets
            XNNPACK. Kernel flags only matter for LCE models.

    Returns:
        A ``Comparison`` with both stats, the speed-up and the converted model's label.

    Raises:
        ValueError: if ``lce_model`` has neither LCE ops nor int8 tensors, or ``float_model``
            has either.
    """
    label = converted_label(lce_model)
    if label is None:
        raise ValueError(f"{load_tflite_bytes(lce_model)[1]}: has no LCE ops and no int8 "
                         "tensors; expected the converted (LCE or int8) model first")
    if converted_label(float_model) is not None:
        raise ValueError(f"{load_tflite_bytes(float_model)[1]}: contains LCE ops or int8 "
                         "tensors; expected the float32 twin")
    lce_stats = benchmark_tflite(lce_model, **options)
    float_options = {key: value for key, value in options.items() if key != "use_xnnpack"}
    float_stats = benchmark_tflite(float_model, **float_options)
    return Comparison(lce=lce_stats, float32=float_stats, label=label)
