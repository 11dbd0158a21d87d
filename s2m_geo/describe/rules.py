"""The S2M quadruple rule: where, how many, what and how for each class of a change mask.

docs/design.md §3.3. For a class occupying N pixels of an H×W mask:

* **how many** – N < 800 → ``a single``; N < 4000 → ``a few``; N < 8000 → ``several``;
  otherwise ``multiple`` (:func:`quantity_from_pixels`). Geo outputs apply the same
  thresholds as ground areas, threshold × ``reference_gsd_m``² (:func:`quantity_from_area`).
* **where** – the class centroid (mean row, mean column of its pixel *centres*, i.e. index
  + 0.5) on a 3×3 grid of thirds of H and W (:func:`direction_from_centroid`).
  Bands are half-open, top/left inclusive: a coordinate ``y`` is **north** when
  ``0 <= y < H/3``, **center** when ``H/3 <= y < 2H/3`` and **south** when
  ``2H/3 <= y <= H``; columns likewise west/center/east. So a centroid lying exactly on a
  third line belongs to the band below it (or right of it). For masks the comparison is
  done in exact integer arithmetic, so this holds without floating-point doubt.
* **what / how** – ``category`` and ``change_type`` from the class table.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..classes import ClassTable
from ..errors import InputError

#: Pixel-count thresholds of the quantity rule (upper bounds, exclusive).
SINGLE_MAX_PX = 800
FEW_MAX_PX = 4000
SEVERAL_MAX_PX = 8000
QUANTITY_THRESHOLDS_PX: tuple[int, int, int] = (SINGLE_MAX_PX, FEW_MAX_PX, SEVERAL_MAX_PX)
#: Quantity words, from smallest to largest; ``QUANTITIES[i]`` applies below threshold ``i``.
QUANTITIES: tuple[str, str, str, str] = ("a single", "a few", "several", "multiple")

_ROW_BANDS = ("north", "center", "south")
_COL_BANDS = ("west", "center", "east")
#: The nine direction names, row-major from the top-left cell.
DIRECTIONS: tuple[str, ...] = (
    "northwest",
    "north",
    "northeast",
    "west",
    "center",
    "east",
    "southwest",
    "south",
    "southeast",
)

# Rows of the mask processed at once when summing coordinates (bounds temporary memory).
_CHUNK_PIXELS = 1 << 21  # pixels per bincount pass: bounded temporary memory


class MaskError(InputError, ValueError):
    """A mask value that the class table does not know (an :class:`InputError` and a ValueError)."""


@dataclass(frozen=True)
class Quadruple:
    """What/how/how-many/where of one change class in one mask, plus its pixel count."""

    class_id: int
    category: str
    change_type: str
    quantity: str
    direction: str
    pixels: int


def _quantity_index(value: float, thresholds: tuple[float, ...]) -> int:
    for i, t in enumerate(thresholds):
        if value < t:
            return i
    return len(thresholds)


def quantity_from_pixels(n: int) -> str:
    """The quantity word for a region of ``n`` pixels (0 counts as ``a single``)."""
    if n < 0:
        raise ValueError(f"pixel count must be >= 0, got {n}")
    return QUANTITIES[_quantity_index(n, QUANTITY_THRESHOLDS_PX)]


def quantity_from_area(area_m2: float, reference_gsd_m: float) -> str:
    """The quantity word for a ground area, thresholds scaled by ``reference_gsd_m``².

    ``quantity_from_area(n * gsd**2, gsd) == quantity_from_pixels(n)`` for pixel counts
    ``n``: an area is compared with ``threshold * gsd**2`` (e.g. 800 px at 0.5 m = 200 m²).
    """
    if not (reference_gsd_m > 0 and math.isfinite(reference_gsd_m)):
        raise ValueError(f"reference_gsd_m must be a positive number, got {reference_gsd_m!r}")
    if not (area_m2 >= 0 and math.isfinite(area_m2)):
        raise ValueError(f"area must be a finite number >= 0, got {area_m2!r}")
    g2 = reference_gsd_m * reference_gsd_m
    return QUANTITIES[_quantity_index(area_m2, tuple(t * g2 for t in QUANTITY_THRESHOLDS_PX))]


def quantities_from_areas(areas_m2: Any, reference_gsd_m: float) -> list[str]:
    """:func:`quantity_from_area` of an array of ground areas (one word each)."""
    if not (reference_gsd_m > 0 and math.isfinite(reference_gsd_m)):
        raise ValueError(f"reference_gsd_m must be a positive number, got {reference_gsd_m!r}")
    a = np.asarray(areas_m2, dtype=np.float64).ravel()
    bad = ~((a >= 0) & np.isfinite(a))
    if bad.any():
        raise ValueError(f"area must be a finite number >= 0, got {a[bad][0]!r}")
    g2 = reference_gsd_m * reference_gsd_m
    return _quantity_words(a, tuple(t * g2 for t in QUANTITY_THRESHOLDS_PX))


def quantities_from_pixels(n: Any) -> list[str]:
    """:func:`quantity_from_pixels` of an array of pixel counts (one word each)."""
    a = np.asarray(n).ravel()
    if (a < 0).any():
        raise ValueError(f"pixel count must be >= 0, got {a[a < 0][0]!r}")
    return _quantity_words(a, QUANTITY_THRESHOLDS_PX)


def _quantity_words(values: np.ndarray, thresholds: tuple[float, ...]) -> list[str]:
    # the index of the first threshold above the value, as _quantity_index
    idx = np.searchsorted(np.asarray(thresholds, dtype=np.float64), values, side="right")
    return [QUANTITIES[i] for i in idx.tolist()]


def _bands(c: Any, size: float) -> np.ndarray:
    """Band indices (0, 1, 2) of coordinates ``c`` in [0, size]: [0, s/3), [s/3, 2s/3), [2s/3, s]."""
    third3 = 3.0 * np.asarray(c, dtype=np.float64)  # compare 3c with s and 2s (no rounding of s/3)
    out: np.ndarray = np.where(third3 < size, 0, np.where(third3 < 2.0 * size, 1, 2))
    return out


def _band(c: float, size: float) -> int:
    return int(_bands(c, size))


def _direction(row_band: int, col_band: int) -> str:
    return DIRECTIONS[3 * row_band + col_band]


def direction_from_fractions(fy: float, fx: float) -> str:
    """Direction of a point given as fractions of the frame, 0 = top (north) / left (west).

    ``fy`` and ``fx`` must lie in [0, 1]. Bands: [0, 1/3) north/west, [1/3, 2/3) center,
    [2/3, 1] south/east. Geo code can pass fractions of a north-up, true-north frame.
    """
    for name, f in (("fy", fy), ("fx", fx)):
        if not 0.0 <= f <= 1.0:  # also rejects NaN
            raise ValueError(f"{name} must be a fraction in [0, 1], got {f!r}")
    return _direction(_band(fy, 1.0), _band(fx, 1.0))


def directions_from_fractions(fy: Any, fx: Any) -> list[str]:
    """:func:`direction_from_fractions` of arrays of fractions (one word per point)."""
    fy, fx = np.broadcast_arrays(np.asarray(fy, dtype=np.float64), np.asarray(fx, dtype=np.float64))
    for name, f in (("fy", fy), ("fx", fx)):
        bad = ~((f >= 0.0) & (f <= 1.0))  # also NaN
        if bad.any():
            raise ValueError(f"{name} must be a fraction in [0, 1], got {f[bad].flat[0]!r}")
    idx = 3 * _bands(fy, 1.0) + _bands(fx, 1.0)
    return [DIRECTIONS[i] for i in idx.ravel().tolist()]


def direction_from_centroid(cy: float, cx: float, h: int, w: int) -> str:
    """Direction of a centroid (row ``cy``, column ``cx``, in pixels) in an ``h``×``w`` image.

    Pixel centres sit at index + 0.5, so valid centroids lie in [0, h] × [0, w]. A centroid
    exactly on a third line goes to the lower/right band, e.g. ``cy == h/3`` is center.
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    if not (0.0 <= cy <= h and 0.0 <= cx <= w):
        raise ValueError(f"centroid ({cy!r}, {cx!r}) lies outside a {h}x{w} image")
    return _direction(_band(cy, h), _band(cx, w))


def _exact_band(index_sum: int, n: int, size: int) -> int:
    """Band of the centroid ``(index_sum + n/2) / n`` in an extent of ``size``, exactly.

    centroid < size/3  <=>  3 * (2*index_sum + n) < 2 * size * n  (all integers).
    """
    lhs = 3 * (2 * index_sum + n)
    if lhs < 2 * size * n:
        return 0
    if lhs < 4 * size * n:
        return 1
    return 2


def direction_from_sums(row_sum: int, col_sum: int, n: int, h: int, w: int) -> str:
    """Direction of the centroid of ``n`` pixels of an ``h``×``w`` image whose row and column
    indices sum to ``row_sum`` and ``col_sum``, decided in exact integer arithmetic."""
    return _direction(_exact_band(row_sum, n, h), _exact_band(col_sum, n, w))


def check_mask(mask: np.ndarray, table: ClassTable) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise MaskError(f"a change mask must be 2-D (H, W), got shape {m.shape}")
    if m.dtype == bool or not np.issubdtype(m.dtype, np.integer):
        raise MaskError(f"a change mask must hold integer class ids, got dtype {m.dtype}")
    if m.size:
        lo, hi = int(m.min()), int(m.max())
        k = table.num_classes - 1
        bad = lo if lo < 0 else (hi if hi > k else None)
        if bad is not None:
            raise MaskError(
                f"mask value {bad} is not a class id of table '{table.name}' "
                f"(ids 0..{k}); use the class table the mask was made with"
            )
    return m


def class_row_col_counts(mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class id 0..num_classes-1: pixel counts per row (K+1, H) and per column (K+1, W).

    int64, computed in row chunks (no per-class full-size temporaries). Ids must already be
    checked to lie in 0..num_classes-1.
    """
    m = np.asarray(mask)
    h, w = m.shape
    per_row = np.zeros((num_classes, h), dtype=np.int64)
    per_col = np.zeros((num_classes, w), dtype=np.int64)
    if m.size == 0:
        return per_row, per_col
    cols = np.arange(w, dtype=np.int64)
    chunk = max(1, _CHUNK_PIXELS // w)
    for r0 in range(0, h, chunk):
        block = m[r0 : r0 + chunk].astype(np.int64)
        bh = block.shape[0]
        per_row[:, r0 : r0 + bh] = np.bincount(
            (block * bh + np.arange(bh, dtype=np.int64)[:, None]).ravel(), minlength=num_classes * bh
        ).reshape(num_classes, bh)
        per_col += np.bincount((block * w + cols[None, :]).ravel(), minlength=num_classes * w).reshape(num_classes, w)
    return per_row, per_col


def class_pixel_stats(mask: np.ndarray, table: ClassTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class id 0..K: pixel count, sum of row indices, sum of column indices (int64).

    Sums are exact integers (no floating point), from :func:`class_row_col_counts`, so
    temporary memory stays bounded for large masks. Raises :class:`MaskError` for unknown ids.
    """
    m = check_mask(mask, table)
    per_row, per_col = class_row_col_counts(m, table.num_classes)
    h, w = m.shape
    counts = per_row.sum(axis=1)
    return counts, per_row @ np.arange(h, dtype=np.int64), per_col @ np.arange(w, dtype=np.int64)


def quadruples_from_mask(mask: np.ndarray, table: ClassTable) -> list[Quadruple]:
    """One :class:`Quadruple` per change class present in ``mask`` (ids 1..K, ascending).

    Id 0 (no change) is ignored; an id outside the table raises :class:`MaskError`
    (a ValueError and an InputError). An empty or all-zero mask gives ``[]``.
    The direction is image-relative (row 0 = north).
    """
    counts, row_sums, col_sums = class_pixel_stats(mask, table)
    h, w = np.shape(mask)
    out: list[Quadruple] = []
    for cid in range(1, table.num_classes):
        n = int(counts[cid])
        if n == 0:
            continue
        cls = table[cid]
        direction = direction_from_sums(int(row_sums[cid]), int(col_sums[cid]), n, h, w)
        out.append(
            Quadruple(
                class_id=cid,
                category=cls.category,
                change_type=cls.change_type,
                quantity=quantity_from_pixels(n),
                direction=direction,
                pixels=n,
            )
        )
    return out
