"""Flatbuffer size of the LCE model against its float32 twin."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["SizeReport"]


@dataclasses.dataclass(frozen=True)
class SizeReport:
    """Sizes of the written flatbuffers.

    Attributes:
        lce_bytes: size of the LCE ``.tflite``.
        float_bytes: size of the float32 twin, ``None`` when none was made.
    """

    lce_bytes: int
    float_bytes: int | None = None

    @property
    def ratio(self) -> float | None:
        """How many times smaller the LCE model is (float bytes / LCE bytes)."""
        if self.float_bytes is None:
            return None
        return self.float_bytes / self.lce_bytes

    def as_dict(self) -> dict[str, Any]:
        return {"lce_bytes": self.lce_bytes, "float_bytes": self.float_bytes, "ratio": self.ratio}

    def summary(self) -> str:
        text = f"size: LCE {self.lce_bytes / 1024:.1f} KiB"
        if self.float_bytes is not None:
            text += (f", float32 {self.float_bytes / 1024:.1f} KiB — {self.ratio:.2f}x smaller")
        return text
