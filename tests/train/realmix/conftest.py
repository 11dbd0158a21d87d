"""Fixtures of the realmix tests: generated stand-ins for real tiles, a folder of them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage


def _bg(seed: int, n: int = 160) -> np.ndarray:
    """A small generated stand-in for a real tile: smooth ground, some roof-like blocks, grain."""
    r = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(r.random((n, n, 3)), (6, 6, 0))
    img = 100 + (base - base.mean()) * 900 + r.normal(0, 4, (n, n, 3))
    for _ in range(6):
        y, x = r.integers(0, n - 20, 2)
        h, w = r.integers(8, 30, 2)
        img[y : y + h, x : x + w] = r.uniform(80, 220, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture()
def tile() -> Callable[..., np.ndarray]:
    """``tile(seed, n=160)``: a deterministic ``(n, n, 3)`` uint8 stand-in for a real tile."""
    return _bg


@pytest.fixture()
def image_dir(tmp_path):
    root = tmp_path / "imgs"
    for i in range(4):
        sub = root / ("buildings" if i % 2 else "parkinglot")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_bg(i, 80)).save(sub / f"tile{i}.png")
    (root / "label").mkdir()  # label rasters are never used as imagery
    Image.fromarray(np.full((80, 80), 1, np.uint8)).save(root / "label" / "tile0.png")
    Image.fromarray(_bg(9, 80)).save(root / "mask.png")
    return root
