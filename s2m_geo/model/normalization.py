"""How band values become model inputs: the one reading of a model package's
``normalization`` (docs/design.md §3.2).

A band value ``v`` becomes ``(v / scale - mean[c]) / std[c]``. At prediction the scene is
first put in 0..255 units (``scene``: uint8 as is, other types by ``x * 255 / scale`` when
the scale is not 255, else by a 2-98 % stretch), so the runners apply
:meth:`Normalization.for_0_255`. Training feeds raw tile values through
:meth:`Normalization.__call__`. Pure numpy, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["IMAGENET", "Normalization"]


@dataclass(frozen=True)
class Normalization:
    """Per-band ``mean`` and ``std`` (of ``v / scale``) and the value ``scale`` of full range."""

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    scale: float = 255.0

    def __post_init__(self) -> None:
        values = (*self.mean, *self.std, self.scale)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError("mean, std and scale must be numbers")
        if not all(math.isfinite(v) for v in values):
            raise ValueError("mean, std and scale must be finite numbers")
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"needs as many means as stds (got {len(self.mean)} and {len(self.std)})")
        if min(self.std) <= 0 or self.scale <= 0:
            raise ValueError("std and scale must be positive")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], bands: int | None = None) -> Normalization:
        """``{"mean": [...], "std": [...], "scale": 255.0}`` (scale optional), checked; with
        ``bands``, exactly that many means and stds. Raises ValueError saying what is wrong."""
        try:
            mean = tuple(float(v) for v in d["mean"])
            std = tuple(float(v) for v in d["std"])
            scale = float(d.get("scale", 255.0))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise ValueError("must be {'mean': [...], 'std': [...], 'scale': number}") from None
        norm = cls(mean, std, scale)
        if bands is not None and len(mean) != bands:
            raise ValueError(f"needs {bands} means and {bands} stds, one per band (got {len(mean)})")
        return norm

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a model package."""
        return {"mean": list(self.mean), "std": list(self.std), "scale": self.scale}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Raw band values (C,H,W) -> model input, float32."""
        m = np.asarray(self.mean, np.float32)[:, None, None]
        s = np.asarray(self.std, np.float32)[:, None, None]
        return (x.astype(np.float32) / np.float32(self.scale) - m) / s

    def for_0_255(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` shaped (C,1,1) for inputs already in 0..255 units: the model input
        is ``(x - mean) / std``."""
        m = np.asarray(self.mean, np.float32) * np.float32(255.0)
        s = np.asarray(self.std, np.float32) * np.float32(255.0)
        return m[:, None, None], s[:, None, None]


#: What timm's ImageNet weights expect; the default of a package that does not say.
IMAGENET = Normalization()
