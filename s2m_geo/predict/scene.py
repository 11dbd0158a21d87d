"""Open a pre/post scene pair and put both epochs on one target grid (docs/design.md §2, "scene grid").

:func:`open_pair` returns a :class:`ScenePair`. Its :attr:`ScenePair.grid` is the processing
grid; :meth:`ScenePair.read` returns both epochs and the joint valid mask for a window of it.

Decisions (the contract the later stages rely on):

* **Target grid.** Default: pre's CRS, resolution and pixel alignment. The grid is pre's
  transform translated by a whole number of pixels (``pre_offset``), so a grid pixel lies exactly
  over a pre pixel. ``crs`` and/or ``resolution`` override it; the overridden grid is north-up,
  square-pixelled and aligned to whole multiples of the resolution in the target CRS (like
  ``gdalwarp -tap``), so the outputs of many pairs on the same CRS/resolution mosaic without
  resampling. Passing pre's own CRS and resolution keeps pre's alignment. Without
  ``resolution``, a new CRS takes the resolution rasterio's ``calculate_default_transform``
  suggests for pre.
* **Extent.** The intersection of the two footprints, each densified along its edges (21 points
  per edge) and transformed into the target grid's pixel space, then snapped *outward* to whole
  pixels (a 1e-3 pixel tolerance stops float noise adding a sliver row/column). Pixels only
  partly covered by an epoch get their validity from that epoch's mask.
* **Reads.** An epoch already on the grid (same CRS, transform equal to the grid's up to a
  whole-pixel shift) is read directly through an offset window (fast path). Any other epoch is
  read through a ``WarpedVRT`` onto the grid, bilinear, with an alpha band added when the source
  has none: the alpha carries the source's nodata, alpha and internal/``.msk`` masks and marks
  warped-in areas outside the source footprint as invalid.
* **Valid mask** = pre valid ∧ post valid. An epoch is valid where GDAL's mask of any selected
  band is non-zero (``read_masks``; for all bands this is ``dataset_mask``: per-dataset
  mask or alpha if present, else per-band nodata combined with "any band valid"). Float
  bands are also invalid where not finite. With ``zero_as_nodata=True``, an epoch that declares
  no nodata value is also invalid where all selected bands are 0 (and a warp of a source with
  no mask at all treats 0 as its source nodata, so zeros are not blended into edges). Pixels where an
  epoch is invalid read as 0 in that epoch.
* **Scaling to model units (0..255, float32).** uint8: as is. Any other real dtype: if the
  model's ``normalization`` has a ``scale`` other than 255, ``x * 255 / scale`` clipped to
  0..255; otherwise a per-band 2nd-98th percentile stretch to 0..255 (clipped), computed ONCE
  per scene from a decimated read (at most ~1024 px on the long side) of the pixels valid in
  both epochs, so every tile of the scene is scaled alike (:attr:`ScenePair.stretch`).
  Complex bands are refused.
* **No CRS.** If exactly one input has a CRS, the other is refused. If neither has one, the
  pair is accepted only when both have the same width and height: they are taken as already
  aligned in pixel space, the grid has ``crs=None`` and the identity transform (pixel
  coordinates), and both epochs take the fast path.
* **Threads.** :meth:`ScenePair.read` may be called from many threads at once: every thread
  opens its own GDAL dataset handles (``threading.local``), so no GDAL handle is ever shared
  between threads; :meth:`ScenePair.close` closes the handles of all threads. A ScenePair
  pickles (to Dask worker processes) without its handles and reopens them lazily there.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.warp import transform as warp_points
from rasterio.windows import Window

from ..errors import InputError
from .tiling import is_strip, mosaic_block_shape, read_cache_bytes

__all__ = [
    "Grid",
    "ScenePair",
    "open_pair",
    "footprint_box",
    "intersect_boxes",
    "box_area",
    "footprint_overlap_fraction",
    "snap_box",
    "integer_offset",
    "clip_window",
    "target_frame",
    "coarse_shape",
    "percentile_stretch",
    "apply_stretch",
    "read_scene",
    "Coverage",
]

SNAP_TOL = 1e-3  # pixels: float noise below this never adds or removes a row/column
OFFSET_TOL = 1e-4  # pixels: an epoch this close to a whole-pixel shift of the grid is "on the grid"
_T = TypeVar("_T")
COVERAGE_MAX = 2048  # long side of the coarse map of where valid pixels may be
COARSE_MAX = 1024  # long side of the decimated read used for the stretch and the all-nodata check
#: most windows a scan reads one by one where the files declare their valid regions (beyond,
#: a whole-grid decimated read is cheaper than many small ones)
MAX_SCAN_REGIONS = 64
#: The probe that comes before a whole-grid scan: at most PROBE_SIDE samples along the long
#: side, at least PROBE_SPACING px apart (and 2), so it decodes only the blocks under its
#: samples — a few per cent of a file's blocks (16 of 289 of a 4288² scene's 256² blocks; with
#: 16 samples there, spaced about one block apart, it decoded nearly all of them: 0.7 s)
PROBE_SIDE = 16
PROBE_SPACING = 1024


def probe_factor(height: int, width: int) -> int:
    """The decimation of the probe of a ``height`` x ``width`` grid (see :data:`PROBE_SIDE`)."""
    side = max(height, width)
    samples = min(PROBE_SIDE, max(2, side // PROBE_SPACING))
    return max(1, math.ceil(side / samples))


STRETCH_PCT = (2.0, 98.0)
DENSIFY = 21

Box = tuple[float, float, float, float]  # (col0, row0, col1, row1) in a frame's pixel space


# ---------------------------------------------------------------------------------------------
# Grid


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS (None: pixel space), affine transform, width and height."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y), positive, in CRS units."""
        t = self.transform
        return math.hypot(t.a, t.d), math.hypot(t.b, t.e)

    @property
    def bounds(self) -> BoundingBox:
        """(left, bottom, right, top) of the grid's corners (their envelope if rotated)."""
        xs, ys = self.transform * (
            np.array([0, self.width, self.width, 0], float),
            np.array([0, 0, self.height, self.height], float),
        )
        return BoundingBox(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))

    def window_transform(self, window: Window) -> Affine:
        """The transform of a window of this grid (the window may extend beyond the grid)."""
        return self.transform * Affine.translation(window.col_off, window.row_off)

    def window(self) -> Window:
        """The whole grid as a window."""
        return Window(0, 0, self.width, self.height)

    @classmethod
    def of(cls, ds: Any) -> Grid:
        """The native grid of an open rasterio dataset."""
        return cls(ds.crs if ds.crs else None, ds.transform, ds.width, ds.height)


# ---------------------------------------------------------------------------------------------
# Pure window / footprint math


def footprint_box(src: Grid, dst_crs: CRS | None, frame: Affine, densify: int = DENSIFY) -> Box | None:
    """Bounding box, in ``frame``'s pixel space, of ``src``'s footprint transformed to ``dst_crs``.

    The footprint's edges are densified (``densify`` points each) before transforming.
    Returns None when no edge point can be transformed.
    """
    t = np.linspace(0.0, 1.0, densify, endpoint=False)
    w, h = float(src.width), float(src.height)
    cols = np.concatenate([t * w, np.full_like(t, w), (1 - t) * w, np.zeros_like(t)])
    rows = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), (1 - t) * h])
    xs, ys = src.transform * (cols, rows)
    if src.crs is not None and dst_crs is not None and src.crs != dst_crs:
        xs, ys = warp_points(src.crs, dst_crs, xs, ys)
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    fc, fr = ~frame * (np.asarray(xs, float), np.asarray(ys, float))
    ok = np.isfinite(fc) & np.isfinite(fr)
    if not ok.any():
        return None
    return float(fc[ok].min()), float(fr[ok].min()), float(fc[ok].max()), float(fr[ok].max())


def intersect_boxes(a: Box, b: Box) -> Box | None:
    """Intersection of two boxes, or None when they do not overlap (touching is not overlap)."""
    c0, r0, c1, r1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if c1 - c0 <= SNAP_TOL or r1 - r0 <= SNAP_TOL:
        return None
    return c0, r0, c1, r1


def box_area(box: Box) -> float:
    """Area of a box (0 for an empty one)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def footprint_overlap_fraction(a: Box, b: Box) -> float:
    """Fraction of box ``a`` covered by box ``b`` (0..1)."""
    inter = intersect_boxes(a, b)
    area = box_area(a)
    return 0.0 if inter is None or area == 0 else box_area(inter) / area


def snap_box(box: Box, tol: float = SNAP_TOL) -> tuple[int, int, int, int]:
    """Snap a box outward to whole pixels; ``tol`` pixels of float noise are ignored."""
    return (math.floor(box[0] + tol), math.floor(box[1] + tol), math.ceil(box[2] - tol), math.ceil(box[3] - tol))


def integer_offset(src: Affine, grid: Affine, tol: float = OFFSET_TOL) -> tuple[int, int] | None:
    """(row, col) of ``grid``'s origin in ``src``'s pixels if ``grid`` is ``src`` shifted by whole
    pixels (same pixel size and orientation), else None."""
    scale = max(abs(src.a), abs(src.b), abs(src.d), abs(src.e))
    if any(abs(p - q) > 1e-9 * scale for p, q in zip(src[:2] + src[3:5], grid[:2] + grid[3:5])):
        return None
    col, row = ~src * (grid.c, grid.f)
    rc, rr = round(col), round(row)
    if abs(col - rc) > tol or abs(row - rr) > tol:
        return None
    return int(rr), int(rc)


def clip_window(window: Window, height: int, width: int) -> tuple[Window, tuple[slice, slice]] | None:
    """Part of ``window`` inside a ``height`` x ``width`` raster, and where it goes in an array
    of the window's shape. None when the window misses the raster."""
    r0, c0 = int(window.row_off), int(window.col_off)
    r1, c1 = r0 + int(window.height), c0 + int(window.width)
    ir0, ic0, ir1, ic1 = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
    if ir1 <= ir0 or ic1 <= ic0:
        return None
    return (Window(ic0, ir0, ic1 - ic0, ir1 - ir0), (slice(ir0 - r0, ir1 - r0), slice(ic0 - c0, ic1 - c0)))


def target_frame(pre: Grid, crs: CRS | None = None, resolution: float | None = None) -> tuple[CRS | None, Affine, bool]:
    """The target CRS, a frame transform the grid is a whole-pixel shift of, and whether that
    frame is pre's own (pre's CRS and resolution kept).

    Overridden frames are north-up and aligned to multiples of the resolution (origin 0, 0).
    """
    dst = crs if crs is not None else pre.crs
    same_crs = dst == pre.crs
    pre_res = pre.res
    same_res = resolution is None or all(abs(resolution - r) <= 1e-9 * r for r in pre_res)
    if same_crs and same_res:
        return pre.crs, pre.transform, True
    if resolution is not None:
        rx = ry = float(resolution)
    else:  # a new CRS at the resolution GDAL suggests for pre
        b = pre.bounds
        t, _, _ = calculate_default_transform(pre.crs, dst, pre.width, pre.height, *b)
        rx, ry = abs(t.a), abs(t.e)
    return dst, Affine(rx, 0.0, 0.0, 0.0, -ry, 0.0), False


def coarse_shape(height: int, width: int, max_side: int = COARSE_MAX) -> tuple[int, int, int]:
    """(factor, coarse height, coarse width) of a decimated view with a long side <= max_side."""
    f = max(1, math.ceil(max(height, width) / max_side))
    return f, math.ceil(height / f), math.ceil(width / f)


def percentile_stretch(
    values: np.ndarray, valid: np.ndarray, pct: tuple[float, float] = STRETCH_PCT
) -> tuple[tuple[float, float], ...]:
    """Per-band (lo, hi) percentiles of ``values`` (C,h,w) over ``valid`` (h,w) pixels."""
    out = []
    for band in values:
        v = band[valid].astype(np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            out.append((0.0, 255.0))
            continue
        lo, hi = (float(x) for x in np.percentile(v, pct))
        out.append((lo, hi if hi > lo else lo + 1.0))
    return tuple(out)


def apply_stretch(values: np.ndarray, stretch: Sequence[tuple[float, float]]) -> np.ndarray:
    """Map each band's (lo, hi) to 0..255, clipped; float32."""
    lo = np.array([s[0] for s in stretch], np.float32)[:, None, None]
    hi = np.array([s[1] for s in stretch], np.float32)[:, None, None]
    out = (values.astype(np.float32) - lo) * (np.float32(255.0) / (hi - lo))
    return np.clip(out, 0.0, 255.0, out=out)


# ---------------------------------------------------------------------------------------------
# Per-epoch description


@dataclass(frozen=True)
class _Epoch:
    """What :class:`ScenePair` knows about one epoch (no open handles)."""

    name: str  # "pre" / "post"
    path: str
    bands: tuple[int, ...]
    dtype: str
    nodata: float | None
    native: Grid
    has_alpha: bool  # the source has an alpha band (a WarpedVRT then adds none)
    per_dataset_mask: bool  # alpha or internal/.msk mask: one mask for all bands
    all_valid: bool  # no nodata, no mask, no alpha
    zero_rule: bool  # zero_as_nodata and no declared nodata
    offset: tuple[int, int] | None = None  # (row, col) of the grid in native pixels: fast path
    scaling: str = "uint8"  # "uint8" | "scale" | "stretch"
    scale: float = 255.0
    stretch: tuple[tuple[float, float], ...] | None = None
    #: 1-based alpha band whose 0 must also count as invalid: a source with both an alpha
    #: band and a declared nodata value, whose GDAL masks follow the nodata value only
    alpha: int | None = None
    #: native-pixel rectangles (col, row, width, height) outside which the file holds no valid
    #: pixel of the selected bands, as it declares itself (a VRT mosaic's sources); None: unknown
    regions: tuple[tuple[int, int, int, int], ...] | None = None
    #: the file's (rows, cols) block shape and the bytes GDAL caches per pixel of a block (every
    #: band of the file: a pixel-interleaved block decodes them all), for sizing the block cache
    block_shape: tuple[int, int] = (256, 256)
    pixel_bytes: int = 3

    def to_model_units(self, data: np.ndarray) -> np.ndarray:
        """Native values (C,h,w) -> float32 0..255 model input units."""
        if self.scaling == "uint8":
            return data.astype(np.float32)
        if self.scaling == "scale":
            out = data.astype(np.float32) * np.float32(255.0 / self.scale)
            return np.clip(out, 0.0, 255.0, out=out)
        assert self.stretch is not None
        return apply_stretch(data, self.stretch)

    def validity(self, data: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Valid (h,w) from the band data and GDAL masks (C or 1,h,w)."""
        valid = np.asarray((masks > 0).any(axis=0))
        if np.dtype(self.dtype).kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        if self.zero_rule:
            valid &= (data != 0).any(axis=0)
        return valid


def _is_local(path: str) -> bool:
    return not (path.startswith("/vsi") or "://" in path)


def _open_dataset(path: str, name: str):
    """rasterio.open with the module's InputErrors for missing files and non-rasters."""
    if _is_local(path) and not os.path.exists(path):
        raise InputError(f"{path}: {name} file not found; check the path")
    if _is_local(path) and os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a raster GDAL can read; give the {name} image file")
    try:
        with warnings.catch_warnings():  # a pair without CRS is handled explicitly (module doc)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"{path}: not a raster GDAL can read ({reason}); give a GeoTIFF or another GDAL raster as {name}"
        ) from None
    if ds.count == 0:
        ds.close()
        raise InputError(
            f"{path}: not a raster GDAL can read (no raster band); give a GeoTIFF or another GDAL raster as {name}"
        )
    return ds


def _flag(bands: Sequence[int]) -> str:
    return ",".join(str(b) for b in bands)


def _select_bands(
    ds,
    path: str,
    name: str,
    bands: Sequence[int] | None,
    param: str,
    model_bands: int,
    default: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Validate a 1-based band selection against the raster and the model; ``param`` is the
    parameter that gave it (``bands`` or ``post_bands``). Without one, the model's own
    ``default`` (its package's bands for this epoch), else bands 1..model_bands."""
    option = "{" + param + "}"
    if bands is None:
        chosen = tuple(default) if default is not None else tuple(range(1, model_bands + 1))
        for b in chosen:
            if not 1 <= b <= ds.count:
                said = (
                    f"the model reads bands {_flag(chosen)}"
                    if default is not None
                    else f"the model takes {model_bands}"
                )
                raise InputError(
                    f"{path}: has {ds.count} band(s); {said}; choose {model_bands} bands with {option} "
                    f"(a band may repeat, e.g. {option} {_flag([1] * model_bands)})",
                    params=(param,),
                )
        return chosen
    chosen = tuple(int(b) for b in bands)
    for b in chosen:
        if not 1 <= b <= ds.count:
            raise InputError(
                f"{path}: has {ds.count} band(s); {option} {_flag(chosen)} asks for band {b}; "
                f"choose bands between 1 and {ds.count}",
                params=(param,),
            )
    if len(chosen) != model_bands:
        raise InputError(
            f"{path}: {option} {_flag(chosen)} selects {len(chosen)} band(s) of {name}; "
            f"the model takes {model_bands}; give {model_bands} band indexes",
            params=(param,),
        )
    return chosen


def _data_band_count(ds) -> int:
    return sum(ci != ColorInterp.alpha for ci in ds.colorinterp)


def _describe_epoch(
    ds,
    path: str,
    name: str,
    bands: tuple[int, ...],
    zero_as_nodata: bool,
    scale: float | None,
    *,
    layout: bool = True,
) -> _Epoch:
    """How an epoch is read. ``layout=False`` skips opening a VRT's sources for their block
    layout (a single whole read, as :func:`read_scene`'s, has no block cache to size)."""
    dtypes = {ds.dtypes[b - 1] for b in bands}
    for dt in dtypes:
        if "complex" in dt:
            raise InputError(
                f"{path}: unsupported data type {dt}; convert to real bands "
                f"(e.g. gdal_translate -ot Float32 of the amplitude)"
            )
    dtype = str(np.result_type(*[np.dtype(d) for d in dtypes]))
    flags = [ds.mask_flag_enums[b - 1] for b in bands]
    has_alpha = any(ci == ColorInterp.alpha for ci in ds.colorinterp)
    alpha_bands = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci == ColorInterp.alpha]
    per_dataset = all(MaskFlags.per_dataset in f for f in flags)
    all_valid = all(f == [MaskFlags.all_valid] for f in flags)
    nodata = ds.nodata
    if dtype == "uint8":
        scaling = "uint8"
    else:
        scaling = "scale" if scale is not None and scale != 255.0 else "stretch"
    scale = scale if scale is not None and scaling == "scale" else 255.0
    return _Epoch(
        name=name,
        path=path,
        bands=bands,
        dtype=dtype,
        nodata=nodata,
        native=Grid.of(ds),
        has_alpha=has_alpha,
        alpha=alpha_bands[0] if alpha_bands and ds.nodata is not None else None,
        per_dataset_mask=per_dataset,
        all_valid=all_valid,
        zero_rule=bool(zero_as_nodata and nodata is None),
        scaling=scaling,
        scale=scale,
        regions=None if has_alpha else _declared_regions(ds, path, bands, bool(zero_as_nodata and nodata is None)),
        block_shape=(_sources_block_shape(ds, path) if layout else None) or tuple(ds.block_shapes[bands[0] - 1]),
        pixel_bytes=sum(np.dtype(d).itemsize for d in ds.dtypes),
    )


#: the VRT sources whose pixels land only inside their DstRect
_VRT_SOURCES = {"SimpleSource", "ComplexSource", "AveragedSource", "KernelFilteredSource"}


def vrt_source_rects(
    xml: str, bands: Sequence[int], width: int, height: int, zero_invalid: bool = False
) -> tuple[tuple[int, int, int, int], ...] | None:
    """The pixel rectangles ``(col, row, width, height)`` of a VRT's sources for the 1-based
    ``bands`` (their DstRects, snapped outward and clipped to the raster): outside them each
    band holds its NoDataValue (or 0, invalid when ``zero_invalid``). None when that cannot be
    told from the XML alone (a warped or derived VRT, a mask band, a band without NoDataValue
    or whose NoDataValue is hidden, when its zeros are valid; a source without DstRect)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    if root.tag != "VRTDataset" or root.get("subClass") or root.find("MaskBand") is not None:
        return None
    by_band = {el.get("band"): el for el in root.findall("VRTRasterBand")}
    rects: set[tuple[int, int, int, int]] = set()
    for b in bands:
        band = by_band.get(str(b))
        if band is None or band.get("subClass") or band.find("MaskBand") is not None:
            return None
        # HideNoDataValue: GDAL then reports no nodata, and the value outside the sources is data
        declared = band.find("NoDataValue") is not None and (band.findtext("HideNoDataValue") or "0").strip() in (
            "",
            "0",
        )
        if not declared and not zero_invalid:
            return None
        for src in band:
            if not src.tag.endswith("Source"):
                continue
            dst = src.find("DstRect")
            if src.tag not in _VRT_SOURCES or dst is None:
                return None
            try:
                x, y, w, h = (float(dst.get(k, "")) for k in ("xOff", "yOff", "xSize", "ySize"))
            except ValueError:
                return None
            c0, r0 = max(math.floor(x), 0), max(math.floor(y), 0)
            c1, r1 = min(math.ceil(x + w), width), min(math.ceil(y + h), height)
            if c1 > c0 and r1 > r0:
                rects.add((c0, r0, c1 - c0, r1 - r0))
    return tuple(sorted(rects))


def _declared_regions(
    ds, path: str, bands: tuple[int, ...], zero_invalid: bool
) -> tuple[tuple[int, int, int, int], ...] | None:
    """:attr:`_Epoch.regions` of an open dataset: a local VRT's sources, else None."""
    if ds.driver != "VRT" or not _is_local(path) or not os.path.isfile(path):
        return None
    if ds.nodata is None and not zero_invalid:  # GDAL's own reading: outside the sources is data
        return None
    try:
        with open(path, encoding="utf-8") as f:
            xml = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    return vrt_source_rects(xml, bands, ds.width, ds.height, zero_invalid)


#: at most this many of a VRT's distinct source files are opened to learn their block layout,
#: evenly spread over its file list (about a millisecond each)
VRT_SOURCES_SAMPLED = 64


def _sources_block_shape(ds, path: str) -> tuple[int, int] | None:
    """A local VRT's block shape as it is read: its source files' (:func:`~.tiling.mosaic_block_shape`;
    a VRT's own 128-px blocks are not what GDAL decodes). None for other files, or when no
    source opens."""
    if ds.driver != "VRT" or not _is_local(path):
        return None
    # GDAL lists the VRT, then its sources and the VRT's own side files (overviews, masks)
    side = (".ovr", ".msk", ".aux.xml")
    files = [f for f in dict.fromkeys(ds.files[1:]) if _is_local(f) and not f.lower().endswith(side)]
    step = max(1, math.ceil(len(files) / VRT_SOURCES_SAMPLED))
    sources: list[tuple[tuple[int, int], int]] = []
    for f in files[::step]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(f) as src:
                    (bh, bw), width = src.block_shapes[0], src.width
            sources.append(((bh, bw), width))
        except (RasterioError, OSError):
            continue  # a missing or unreadable source: reading the VRT reports it, as ever
    return mosaic_block_shape(sources) if sources else None


def _vrt_kwargs(ep: _Epoch, grid: Grid, resampling: Resampling = Resampling.bilinear) -> dict:
    """WarpedVRT arguments that put an epoch on ``grid``."""
    kw: dict[str, Any] = dict(
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling,
        add_alpha=not ep.has_alpha,
    )
    if ep.zero_rule and ep.all_valid:
        kw["src_nodata"] = 0  # do not blend zero (no-data) pixels into their neighbours
    return kw


def _read_epoch(
    ep: _Epoch,
    reader,
    inner: Window,
    out_shape: tuple[int, int] | None = None,
    resampling: Resampling = Resampling.nearest,
) -> tuple[np.ndarray, np.ndarray]:
    """Native data (C,h,w) and valid (h,w) of ``inner`` (grid coordinates, inside the grid)."""
    h, w = out_shape or (int(inner.height), int(inner.width))
    data = np.zeros((len(ep.bands), h, w), ep.dtype)
    valid = np.zeros((h, w), bool)
    if ep.offset is None:  # reader is a WarpedVRT on the grid
        src_win, dst = inner, (slice(None), slice(None))
    else:  # direct: the grid window shifted into native pixels, clipped to the raster
        r, c = ep.offset
        shifted = Window(inner.col_off + c, inner.row_off + r, inner.width, inner.height)
        if out_shape is not None:  # decimated reads: the grid lies inside the raster
            src_win, dst = shifted, (slice(None), slice(None))
        else:
            clipped = clip_window(shifted, ep.native.height, ep.native.width)
            if clipped is None:
                return data, valid
            src_win, dst = clipped
    sub_h, sub_w = valid[dst].shape
    # a WarpedVRT always has an alpha band (added, or the source's): one per-dataset mask
    mask_bands = [ep.bands[0]] if (ep.per_dataset_mask or ep.offset is None) else list(ep.bands)
    try:
        if out_shape is None:
            d = reader.read(list(ep.bands), window=src_win)
            m = reader.read_masks(mask_bands, window=src_win)
        else:
            d = reader.read(
                list(ep.bands), window=src_win, out_shape=(len(ep.bands), sub_h, sub_w), resampling=resampling
            )
            m = reader.read_masks(
                mask_bands, window=src_win, out_shape=(len(mask_bands), sub_h, sub_w), resampling=resampling
            )
        if ep.alpha is not None and ep.offset is not None:  # a WarpedVRT's mask has the alpha already
            shape = None if out_shape is None else (sub_h, sub_w)
            m = m & (reader.read(ep.alpha, window=src_win, out_shape=shape, resampling=resampling) > 0)
    except RasterioError as exc:  # e.g. a truncated file: the header is fine, the data is cut
        cause = " ".join(str(exc.__cause__ or exc).split())[:160]
        raise InputError(
            f"{ep.path}: cannot read its pixels ({cause}); the file is truncated "
            f"or corrupt: download or export it again"
        ) from None
    data[:, dst[0], dst[1]] = d
    valid[dst] = ep.validity(d, m)
    return data, valid


@dataclass
class _Handles:
    """One thread's open datasets: the files and the readers (dataset or WarpedVRT) per epoch."""

    files: list = field(default_factory=list)
    readers: dict = field(default_factory=dict)

    def close(self) -> None:
        for r in list(self.readers.values()) + self.files:
            try:
                if not r.closed:
                    r.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass
        self.readers.clear()
        self.files.clear()


class ScenePair:
    """Two epochs on one target grid. Use :func:`open_pair`; a context manager (closes handles).

    :meth:`read` is thread-safe: every thread reads through its own GDAL dataset handles
    (``threading.local``); :meth:`close` closes those of all threads.
    """

    def __init__(self, grid: Grid, pre: _Epoch, post: _Epoch):
        self.grid = grid
        self._epochs = {"pre": pre, "post": post}
        self._coverage: Coverage | None = None
        self._init_runtime()

    # -- runtime state (not pickled) --
    def _init_runtime(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all_handles: list[_Handles] = []
        self._closed = False

    def __getstate__(self) -> dict:
        return {"grid": self.grid, "_epochs": self._epochs, "_coverage": self._coverage}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    # -- descriptive attributes --
    @property
    def pre_path(self) -> str:
        return self._epochs["pre"].path

    @property
    def post_path(self) -> str:
        return self._epochs["post"].path

    @property
    def bands(self) -> tuple[int, ...]:
        """1-based pre bands read."""
        return self._epochs["pre"].bands

    @property
    def post_bands(self) -> tuple[int, ...]:
        """1-based post bands read."""
        return self._epochs["post"].bands

    @property
    def dtype_in(self) -> dict[str, str]:
        """Native data type per epoch, e.g. {"pre": "uint8", "post": "int16"}."""
        return {k: e.dtype for k, e in self._epochs.items()}

    @property
    def scaling(self) -> dict[str, str]:
        """Scaling rule per epoch: "uint8" (as is), "scale" (x*255/scale) or "stretch"."""
        return {k: e.scaling for k, e in self._epochs.items()}

    @property
    def stretch(self) -> dict[str, tuple[tuple[float, float], ...] | None]:
        """Per epoch, per band (lo, hi) of the percentile stretch (None when not stretched)."""
        return {k: e.stretch for k, e in self._epochs.items()}

    @property
    def pre_offset(self) -> tuple[int, int] | None:
        """(row, col) of the grid's origin in pre's native pixels; None when pre is warped."""
        return self._epochs["pre"].offset

    @property
    def post_offset(self) -> tuple[int, int] | None:
        """(row, col) of the grid's origin in post's native pixels; None when post is warped."""
        return self._epochs["post"].offset

    @property
    def warped(self) -> dict[str, bool]:
        """Per epoch: read through a WarpedVRT (True) or directly (fast path, False)."""
        return {k: e.offset is None for k, e in self._epochs.items()}

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        g = self.grid
        return (
            f"ScenePair(pre={self.pre_path!r}, post={self.post_path!r}, grid={g.width}x{g.height} "
            f"{g.crs.to_string() if g.crs else 'pixel space'} res={g.res}, warped={self.warped})"
        )

    # -- handles --
    def _handles(self) -> _Handles:
        if self._closed:
            raise ValueError("ScenePair is closed")
        h = getattr(self._local, "h", None)
        if h is None:
            h = _Handles()
            with self._lock:
                if self._closed:
                    raise ValueError("ScenePair is closed")
                self._all_handles.append(h)
            for name, ep in self._epochs.items():
                ds = rasterio.open(ep.path)
                h.files.append(ds)
                h.readers[name] = ds if ep.offset is not None else WarpedVRT(ds, **_vrt_kwargs(ep, self.grid))
            self._local.h = h
        return h

    def close(self) -> None:
        """Close the dataset handles of every thread. Idempotent."""
        with self._lock:
            self._closed = True
            handles, self._all_handles = self._all_handles, []
        for h in handles:
            h.close()

    def __enter__(self) -> ScenePair:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_cache_bytes(self, tile: int, extent: tuple[int, int], threads: int, by_rows: bool = True) -> int:
        """GDAL block cache, bytes, that reading blocks of tiles of ``extent`` (rows, cols of the
        grid), row by row when ``by_rows``, needs from ``threads`` readers (each reads through
        its own handles, and GDAL caches blocks per handle); see
        :func:`~s2m_geo.predict.tiling.read_cache_bytes`."""
        total = 0
        for ep in self._epochs.values():
            s = self._file_scale(ep)
            total += read_cache_bytes(
                ep.block_shape,
                ep.native.width,
                ep.pixel_bytes,
                math.ceil(tile * s),
                (math.ceil(extent[0] * s), math.ceil(extent[1] * s)),
                by_rows,
            )
        return threads * total

    def striped(self) -> bool:
        """Whether either file is stored in strips as wide as itself: its blocks must run row by
        row, or every column of blocks decodes the strips again. A mosaic's strips are its
        sources' (:attr:`_Epoch.block_shape`), narrower than the mosaic: not these."""
        return any(is_strip(ep.block_shape, ep.native.width) for ep in self._epochs.values())

    def _file_scale(self, ep: _Epoch) -> float:
        """File pixels per grid pixel: a warped epoch is read in its own pixels, more of them
        where it is finer than the grid."""
        if ep.native.crs == self.grid.crs and ep.offset is None:
            return min(max(self.grid.res[0] / ep.native.res[0], 0.25), 4.0)
        return 1.0

    # -- reading --
    def native_grid(self, epoch: str) -> Grid:
        """The grid of ``"pre"`` or ``"post"`` as stored in its file."""
        return self._epochs[epoch].native

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pre, post, valid)`` for a window in grid pixel coordinates.

        ``pre`` and ``post`` are float32 (C,h,w) in model input units 0..255 (before mean/std),
        ``valid`` is bool (h,w) = pre valid ∧ post valid. The window may extend beyond the
        grid: outside it everything is 0 and ``valid`` is False. An epoch's invalid pixels are 0.
        """
        window = _as_window(window)
        h, w = int(window.height), int(window.width)
        pre_ep, post_ep = self._epochs["pre"], self._epochs["post"]
        pre = np.zeros((len(pre_ep.bands), h, w), np.float32)
        post = np.zeros((len(post_ep.bands), h, w), np.float32)
        valid = np.zeros((h, w), bool)
        clipped = clip_window(window, self.grid.height, self.grid.width)
        if clipped is None:
            return pre, post, valid
        inner, dst = clipped
        handles = self._handles()
        joint = None
        for ep, out in ((pre_ep, pre), (post_ep, post)):
            data, ok = _read_epoch(ep, handles.readers[ep.name], inner)
            vals = ep.to_model_units(data)
            vals[:, ~ok] = 0.0
            out[(slice(None),) + dst] = vals
            joint = ok if joint is None else joint & ok
        valid[dst] = joint
        return pre, post, valid

    def read_valid(self, window: Window) -> np.ndarray:
        """Only the joint valid mask (h,w) of a window (cheaper than :meth:`read`)."""
        window = _as_window(window)
        valid = np.zeros((int(window.height), int(window.width)), bool)
        clipped = clip_window(window, self.grid.height, self.grid.width)
        if clipped is None:
            return valid
        inner, dst = clipped
        handles = self._handles()
        ok_pre = _read_epoch(self._epochs["pre"], handles.readers["pre"], inner)[1]
        ok_post = _read_epoch(self._epochs["post"], handles.readers["post"], inner)[1]
        valid[dst] = ok_pre & ok_post
        return valid

    def _read_coarse(self, ep: _Epoch, window: Window, factor: int) -> tuple[np.ndarray, np.ndarray]:
        """A decimated (nearest, 1 in ``factor``) read of an epoch over a window of the grid:
        data (C,ch,cw), valid (ch,cw)."""
        if factor == 1:
            return _read_epoch(ep, self._handles().readers[ep.name], window)
        h, w = int(window.height), int(window.width)
        ch, cw = math.ceil(h / factor), math.ceil(w / factor)
        if ep.offset is not None:
            return _read_epoch(ep, self._handles().readers[ep.name], window, out_shape=(ch, cw))
        g = self.grid
        coarse = Grid(g.crs, g.window_transform(window) * Affine.scale(w / cw, h / ch), cw, ch)
        with rasterio.open(ep.path) as ds, WarpedVRT(ds, **_vrt_kwargs(ep, coarse, Resampling.nearest)) as vrt:
            return _read_epoch(ep, vrt, coarse.window())

    def _grid_rects(self, ep: _Epoch) -> list[Window] | None:
        """An epoch's :attr:`_Epoch.regions` as windows of the grid (None: unknown)."""
        if ep.regions is None:
            return None
        g = self.grid
        out = []
        for col, row, w, h in ep.regions:
            if ep.offset is not None:
                r, c = ep.offset
                win = Window(col - c, row - r, w, h)
            else:
                sub = Grid(ep.native.crs, ep.native.transform * Affine.translation(col, row), w, h)
                box = footprint_box(sub, g.crs, g.transform)
                if box is None:
                    return None
                c0, r0, c1, r1 = snap_box(box)
                win = Window(c0 - 1, r0 - 1, c1 - c0 + 2, r1 - r0 + 2)  # bilinear reaches a pixel further
            clipped = clip_window(win, g.height, g.width)
            if clipped is not None:
                out.append(clipped[0])
        return out

    def regions(self) -> list[Window] | None:
        """Windows of the grid outside which no pixel is jointly valid, as the files declare it
        (a VRT mosaic's sources), found without reading a pixel; None when unknown."""
        pre, post = (self._grid_rects(ep) for ep in self._epochs.values())
        if pre is None or post is None:
            return pre if post is None else post
        if len(pre) * len(post) > MAX_SCAN_REGIONS**2:
            return None  # too many to pair up cheaply: as if unknown
        out = []
        for a in pre:
            for b in post:
                c0, r0 = max(a.col_off, b.col_off), max(a.row_off, b.row_off)
                c1 = min(a.col_off + a.width, b.col_off + b.width)
                r1 = min(a.row_off + a.height, b.row_off + b.height)
                if c1 > c0 and r1 > r0:
                    out.append(Window(c0, r0, c1 - c0, r1 - r0))
        return out

    def coverage(self) -> Coverage:
        """Where both epochs may hold a valid pixel, on a coarse grid (computed once): a tile
        outside it need not be read at all, so a scene costs what its valid area costs."""
        if self._coverage is None:
            _, ch, cw = coarse_shape(self.grid.height, self.grid.width, COVERAGE_MAX)
            pre, post = _both(lambda ep: self._possibly_valid(ep, ch, cw), *self._epochs.values())
            joint = pre & post if pre is not None and post is not None else None
            self._coverage = Coverage(self.grid.height, self.grid.width, joint)
        return self._coverage

    def _possibly_valid(self, ep: _Epoch, ch: int, cw: int) -> np.ndarray | None:
        """(ch, cw) bool: True where a cell may hold a valid pixel of ``ep``; None when that
        cannot be known cheaply (then nothing is skipped). GDAL's average resampling leaves
        a declared nodata value out, so a cell's average is the nodata value only where
        every pixel is nodata — exact for an unsigned type whose nodata is its least or
        greatest value (valid values all lie on one side of it)."""
        if ep.all_valid and not ep.zero_rule:
            return np.ones((ch, cw), bool)
        kind = np.dtype(ep.dtype)
        if kind.kind != "u" or ep.per_dataset_mask or ep.alpha is not None:
            return None
        if not (ep.zero_rule or ep.nodata in (0, np.iinfo(kind).max)):
            return None
        nodata = 0.0 if ep.zero_rule else float(ep.nodata)  # type: ignore[arg-type]
        g = self.grid
        coarse = Grid(g.crs, g.transform * Affine.scale(g.width / cw, g.height / ch), cw, ch)
        with rasterio.open(ep.path) as ds:
            if ep.offset is None:
                with WarpedVRT(ds, **_vrt_kwargs(ep, coarse, Resampling.average)) as vrt:
                    avg = vrt.read(list(ep.bands), out_dtype="float32")
            else:
                r, c = ep.offset
                win = Window(c, r, g.width, g.height)
                avg = ds.read(  # the grid lies inside the raster (it is the footprints' overlap)
                    list(ep.bands),
                    window=win,
                    out_shape=(len(ep.bands), ch, cw),
                    resampling=Resampling.average,
                    out_dtype="float32",
                )
        return np.asarray((avg != nodata).any(axis=0))

    def _probe_all_valid(self) -> bool:
        """Whether every sample of a sparse decimated read (:func:`probe_factor`) is valid in
        both epochs."""
        g = self.grid
        f = probe_factor(g.height, g.width)
        reads = _both(partial(self._read_coarse, window=g.window(), factor=f), *self._epochs.values())
        return bool((reads[0][1] & reads[1][1]).all())

    def _probe_any_valid(self, windows: list[Window]) -> bool:
        """Whether a sparse decimated read (:func:`probe_factor`) of any of ``windows`` finds a
        sample valid in both epochs."""
        for win in windows:
            f = probe_factor(int(win.height), int(win.width))
            reads = _both(partial(self._read_coarse, window=win, factor=f), *self._epochs.values())
            if (reads[0][1] & reads[1][1]).any():
                return True
        return False

    def _any_valid_full(self, window: Window, rows: int = 512) -> bool:
        """Full-resolution scan of a window, strip by strip, for any jointly valid pixel."""
        c, r0, w, h = int(window.col_off), int(window.row_off), int(window.width), int(window.height)
        for r in range(r0, r0 + h, rows):
            if self.read_valid(Window(c, r, w, min(rows, r0 + h - r))).any():
                return True
        return False

    def _scan(self) -> None:
        """Refuse an all-nodata overlap and compute the percentile stretches, from decimated reads:
        of the whole grid, or only of the :meth:`regions` the files declare when they cover at
        most half of it (a mosaic's footprints in a nodata frame: the frame costs nothing)."""
        g = self.grid
        regions = self.regions()
        area = sum(w.width * w.height for w in regions) if regions is not None else g.width * g.height
        stretch = any(ep.scaling == "stretch" for ep in self._epochs.values())
        if regions is not None and len(regions) <= MAX_SCAN_REGIONS and area <= g.width * g.height / 2:
            self._coverage = Coverage.of_windows(g.height, g.width, regions)
            if not stretch and self._probe_any_valid(regions):
                # a jointly valid sample: not all nodata, and no stretch to compute; the decimated
                # scan of the footprints would decode each of them once more than the tiles do
                return
            f = max(1, math.ceil(math.sqrt(area) / COARSE_MAX))  # about COARSE_MAX² samples in all
        else:
            regions = [g.window()]
            f = coarse_shape(g.height, g.width, COARSE_MAX)[0]
            if not stretch and self._probe_all_valid():
                # valid samples: not all nodata; no stretch to compute; and a frame of nodata the
                # probe missed costs only the reads of its tiles (each found empty and skipped).
                # The whole-grid scan would decode every block of both scenes once more than the
                # tiles do: a third of the run of a fast model (docs/benchmarks.md)
                self._coverage = Coverage(g.height, g.width, None)
                return
        pre_ep, post_ep = self._epochs["pre"], self._epochs["post"]
        reads = [_both(partial(self._read_coarse, window=win, factor=f), pre_ep, post_ep) for win in regions]
        pre_d, pre_v = _side_by_side([r[0] for r in reads], pre_ep)
        post_d, post_v = _side_by_side([r[1] for r in reads], post_ep)
        joint = pre_v & post_v
        if joint.all() and self._coverage is None:  # every sample valid: a coverage map would skip nothing
            self._coverage = Coverage(g.height, g.width, None)
        if not joint.any() and (f == 1 or not any(self._any_valid_full(win) for win in regions)):
            if not pre_v.any():
                bad = self.pre_path
            elif not post_v.any():
                bad = self.post_path
            else:
                bad = f"{self.pre_path} and {self.post_path}"
            raise InputError(
                f"{bad}: no valid pixel where both scenes overlap (all nodata or masked); "
                f"check the nodata value and masks, or give another pair"
            )
        for name, data, own in (("pre", pre_d, pre_v), ("post", post_d, post_v)):
            ep = self._epochs[name]
            if ep.scaling == "stretch":
                use = joint if joint.any() else own
                self._epochs[name] = replace(ep, stretch=percentile_stretch(data, use))


def _side_by_side(parts: list[tuple[np.ndarray, np.ndarray]], ep: _Epoch) -> tuple[np.ndarray, np.ndarray]:
    """Decimated reads of several windows as one row of samples: data (C,1,n), valid (1,n)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros((len(ep.bands), 1, 0), ep.dtype), np.zeros((1, 0), bool)
    data = np.concatenate([d.reshape(d.shape[0], 1, -1) for d, _ in parts], axis=2)
    return data, np.concatenate([v.reshape(1, -1) for _, v in parts], axis=1)


def _both(read: Callable[[_Epoch], _T], pre: _Epoch, post: _Epoch) -> tuple[_T, _T]:
    """``read`` of both epochs at once, one in a thread of its own (whole-scene reads: each
    is mostly GDAL decoding, which runs outside the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2m-scan") as pool:
        other = pool.submit(read, post)
        return read(pre), other.result()


@dataclass(frozen=True)
class Coverage:
    """A coarse map of where a grid may hold valid pixels (``cells`` None: anywhere)."""

    height: int
    width: int
    cells: np.ndarray | None

    @classmethod
    def of_windows(cls, height: int, width: int, windows: Sequence[Window]) -> Coverage:
        """The coarse map of a grid whose valid pixels all lie inside ``windows``."""
        _, ch, cw = coarse_shape(height, width, COVERAGE_MAX)
        cells = np.zeros((ch, cw), bool)
        for w in windows:
            r0, c0 = int(w.row_off), int(w.col_off)
            r1, c1 = r0 + int(w.height), c0 + int(w.width)
            cells[r0 * ch // height : -(-r1 * ch // height), c0 * cw // width : -(-c1 * cw // width)] = True
        return cls(height, width, cells)

    def may_hold(self, window: Window) -> bool:
        """Whether ``window`` (grid pixels) may hold a valid pixel; False only when certain."""
        rect = [[int(window.row_off), int(window.col_off), int(window.height), int(window.width)]]
        return bool(self.may_hold_rects(np.asarray(rect, np.int64))[0])

    def may_hold_rects(self, rects: np.ndarray) -> np.ndarray:
        """:meth:`may_hold` of many windows at once: ``rects`` (n, 4) int rows of (row, col,
        height, width) in grid pixels; one bool each (a table of the cells' running sums
        answers each window in O(1): a mosaic's tens of thousands of tiles cost no loop)."""
        rects = np.asarray(rects, np.int64).reshape(-1, 4)
        r0, c0 = np.maximum(rects[:, 0], 0), np.maximum(rects[:, 1], 0)
        r1 = np.minimum(rects[:, 0] + rects[:, 2], self.height)
        c1 = np.minimum(rects[:, 1] + rects[:, 3], self.width)
        inside = (r0 < r1) & (c0 < c1)
        if self.cells is None:
            return inside
        ch, cw = self.cells.shape
        # the cells the window touches, with a cell of margin for rounding at their edges
        i0 = np.clip(r0 * ch // self.height - 1, 0, ch)
        i1 = np.clip(-(-r1 * ch // self.height) + 1, 0, ch)
        j0 = np.clip(c0 * cw // self.width - 1, 0, cw)
        j1 = np.clip(-(-c1 * cw // self.width) + 1, 0, cw)
        sums = self._running_sums
        count = sums[i1, j1] - sums[i0, j1] - sums[i1, j0] + sums[i0, j0]
        return inside & (i0 < i1) & (j0 < j1) & (count > 0)

    @cached_property
    def _running_sums(self) -> np.ndarray:
        """(ch + 1, cw + 1) int32 (at most :data:`COVERAGE_MAX` squared cells): the count of True
        cells above and left of each corner, summed in place (a mosaic's map has a million cells)."""
        assert self.cells is not None
        sums = np.zeros((self.cells.shape[0] + 1, self.cells.shape[1] + 1), np.int32)
        inner = sums[1:, 1:]
        np.cumsum(self.cells, axis=0, dtype=np.int32, out=inner)
        np.cumsum(inner, axis=1, out=inner)
        return sums


def read_scene(
    path: str | os.PathLike,
    grid: Grid,
    bands: Sequence[int],
    *,
    zero_as_nodata: bool = False,
    resampling: Resampling = Resampling.bilinear,
) -> tuple[np.ndarray, np.ndarray]:
    """One scene on ``grid`` (e.g. a reduced copy of the change raster's grid): its native
    values (C,H,W) of the 1-based ``bands`` and its valid mask (H,W), by the rules a
    :class:`ScenePair` reads with (nodata, GDAL masks, alpha, non-finite, zero). Without a
    CRS on the grid or the file, the grid is the image itself, resampled to the grid's size.
    """
    path = os.fspath(path)
    with _open_dataset(path, "scene") as ds:
        ep = _describe_epoch(ds, path, "scene", tuple(bands), zero_as_nodata, None, layout=False)
        if grid.crs is None or ds.crs is None:
            ep = replace(ep, offset=(0, 0))
            return _read_epoch(ep, ds, ep.native.window(), out_shape=grid.shape, resampling=resampling)
        with WarpedVRT(ds, **_vrt_kwargs(ep, grid, resampling)) as vrt:
            return _read_epoch(ep, vrt, grid.window())


def _as_window(window: Window | Sequence[int]) -> Window:
    """A rasterio Window with integer offsets and sizes ((col, row, width, height) also accepted)."""
    if not isinstance(window, Window):
        window = Window(*window)
    vals = (window.col_off, window.row_off, window.width, window.height)
    if any(abs(v - round(v)) > 1e-6 for v in vals):
        raise ValueError(f"window {window} is not on whole grid pixels")
    col, row, w, h = (int(round(v)) for v in vals)
    if w < 0 or h < 0:
        raise ValueError(f"window {window} has a negative size")
    return Window(col, row, w, h)


# ---------------------------------------------------------------------------------------------
# Opening


def _parse_crs(crs: Any) -> CRS | None:
    if crs is None:
        return None
    try:
        out = CRS.from_user_input(crs)
    except (CRSError, ValueError, TypeError):
        raise InputError(f"{{crs}} {crs}: not a CRS GDAL knows; give e.g. EPSG:32636", params=("crs",)) from None
    return out


def _build_grid(
    pre: Grid, post: Grid, pre_path: str, post_path: str, crs: CRS | None, resolution: float | None
) -> Grid:
    """The processing grid of a pair (see the module docstring); raises InputError."""
    if pre.crs is None or post.crs is None:
        if pre.crs is not None or post.crs is not None:
            bad, other = (pre_path, post_path) if pre.crs is None else (post_path, pre_path)
            raise InputError(
                f"{bad}: has no CRS (not georeferenced) but {other} has one; "
                f"georeference it (e.g. gdal_edit.py -a_srs/-a_ullr) or give a georeferenced file"
            )
        if crs is not None or resolution is not None:
            raise InputError(
                f"{pre_path}: has no CRS, so {{crs}}/{{resolution}} cannot apply; "
                f"georeference both scenes or drop those options",
                params=("crs", "resolution"),
            )
        if not pre.transform.almost_equals(post.transform):
            col, row = ~pre.transform * (post.transform.c, post.transform.f)
            raise InputError(
                f"{post_path}: has no CRS, and its georeference (e.g. a world file) places it "
                f"{abs(col):.4g} px {'east' if col >= 0 else 'west'}, {abs(row):.4g} px "
                f"{'south' if row >= 0 else 'north'} of {pre_path}, so pixel-by-pixel would be wrong; "
                f"give both scenes their CRS (e.g. gdal_edit.py -a_srs EPSG:32636) so they can be aligned"
            )
        if (pre.width, pre.height) != (post.width, post.height):
            raise InputError(
                f"{post_path}: neither scene has a CRS and their sizes differ "
                f"(pre {pre.width}x{pre.height}, post {post.width}x{post.height}); "
                f"georeference them or give images of the same size"
            )
        return Grid(None, Affine.identity(), pre.width, pre.height)
    if resolution is not None:
        try:
            res_ok = float(resolution) > 0 and math.isfinite(float(resolution))
        except (TypeError, ValueError):
            res_ok = False
        if not res_ok:
            raise InputError(
                f"{{resolution}} {resolution}: must be a positive number in target CRS units", params=("resolution",)
            )
        resolution = float(resolution)
    dst_crs, frame, _ = target_frame(pre, crs, resolution)
    if resolution is not None:
        _check_resolution(pre, pre_path, dst_crs, frame, resolution)
    boxes = []
    for g, path in ((pre, pre_path), (post, post_path)):
        box = footprint_box(g, dst_crs, frame)
        if box is None:
            raise InputError(
                f"{path}: its footprint cannot be transformed to "
                f"{dst_crs.to_string() if dst_crs is not None else 'the target grid'}; choose another {{crs}}",
                params=("crs",),
            )
        boxes.append(box)
    inter = intersect_boxes(*boxes)
    if inter is None:
        raise InputError(
            f"{post_path}: footprints do not overlap ({pre_path} and {post_path} cover "
            f"different places); give a pair of the same area"
        )
    if inter[2] - inter[0] < 1 - SNAP_TOL or inter[3] - inter[1] < 1 - SNAP_TOL:
        raise InputError(
            f"{post_path}: the overlap with {pre_path} is smaller than one pixel "
            f"({inter[2] - inter[0]:.3g} x {inter[3] - inter[1]:.3g}); give a pair of the same area"
        )
    c0, r0, c1, r1 = snap_box(inter)
    return Grid(dst_crs, frame * Affine.translation(c0, r0), c1 - c0, r1 - r0)


def _refuse_gcps_only(ds: Any, path: str) -> None:
    """A raster placed by ground control points has no grid to align on: say so, instead of
    calling it "not georeferenced"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        gcps_only = ds.crs is None and ds.transform.is_identity and bool(ds.gcps[0])
    if gcps_only:
        raise InputError(
            f"{path}: is georeferenced by {len(ds.gcps[0])} ground control points (GCPs), not a grid; "
            f"warp it onto one first, e.g. gdalwarp -r bilinear -tps {path} warped.tif"
        )


#: The largest grid a run may ask for (pixels): beyond, a resolution is a unit mistake, and
#: refused before anything is allocated (100,000 x 100,000 px is well inside).
MAX_GRID_PIXELS = 4e10


def _check_resolution(pre: Grid, pre_path: str, dst_crs: CRS | None, frame: Affine, resolution: float) -> None:
    """Refuse a resolution that makes the scene a few pixels, or an unbounded grid: almost
    always a number in the wrong unit (metres for a CRS in degrees, or the reverse)."""
    box = footprint_box(pre, dst_crs, frame)
    if box is None:
        return  # the footprint check reports it
    w, h = box[2] - box[0], box[3] - box[1]
    if min(w, h) >= 2 and w * h <= MAX_GRID_PIXELS:
        return
    units = "degrees" if dst_crs is not None and dst_crs.is_geographic else "metres"
    if dst_crs is not None and not dst_crs.is_geographic and dst_crs.linear_units not in ("metre", "meter", ""):
        units = str(dst_crs.linear_units)
    native = target_frame(pre, dst_crs, None)[1].a
    name = dst_crs.to_string() if dst_crs is not None else "the target CRS"
    raise InputError(
        f"{{resolution}} {resolution:g}: {name} counts in {units}, so {pre_path} would be "
        f"{max(w, 0):.3g} x {max(h, 0):.3g} pixels; give the resolution in {units} "
        f"(its own pixels are about {native:.3g})",
        params=("resolution",),
    )


def open_pair(
    pre: str | os.PathLike,
    post: str | os.PathLike,
    *,
    bands: Sequence[int] | None = None,
    post_bands: Sequence[int] | None = None,
    crs: Any = None,
    resolution: float | None = None,
    zero_as_nodata: bool = False,
    model_bands: int = 3,
    default_bands: Mapping[str, Sequence[int]] | None = None,
    scale: float | None = None,
) -> ScenePair:
    """Open a pre/post pair on one target grid; see the module docstring for the rules.

    ``bands``: 1-based pre bands (default: ``default_bands["pre"]``, the model package's,
    else 1..model_bands); ``post_bands``: default ``bands`` if given, else the model's post
    bands.
    ``crs`` (anything pyproj/rasterio accepts) and ``resolution`` (target CRS units) override
    pre's grid. ``scale``: the model's full-range value (its normalisation's; if not 255,
    non-uint8 data maps by ``x * 255 / scale``, else by a 2-98 % stretch). Raises :class:`InputError` for bad input.
    """
    pre_path, post_path = os.fspath(pre), os.fspath(post)
    if model_bands < 1:
        raise ValueError(f"model_bands must be >= 1, not {model_bands}")
    target_crs = _parse_crs(crs)
    files = []
    try:
        for path, name in ((pre_path, "pre"), (post_path, "post")):
            files.append(_open_dataset(path, name))
            _refuse_gcps_only(files[-1], path)
        pre_ds, post_ds = files
        if bands is None and post_bands is None:
            n_pre, n_post = _data_band_count(pre_ds), _data_band_count(post_ds)
            if n_pre != n_post:
                raise InputError(
                    f"{post_path}: pre has {n_pre} bands, post {n_post}; choose with "
                    f"{{bands}}/{{post_bands}} (e.g. {{bands}} 1,2,3 {{post_bands}} 1,2,3)",
                    params=("bands", "post_bands"),
                )
        defaults = default_bands or {}
        pre_b = _select_bands(pre_ds, pre_path, "pre", bands, "bands", model_bands, defaults.get("pre"))
        post_b = _select_bands(
            post_ds,
            post_path,
            "post",
            post_bands if post_bands is not None else bands,
            "post_bands" if post_bands is not None else "bands",
            model_bands,
            defaults.get("post") if bands is None else None,
        )
        pre_ep = _describe_epoch(pre_ds, pre_path, "pre", pre_b, zero_as_nodata, scale)
        post_ep = _describe_epoch(post_ds, post_path, "post", post_b, zero_as_nodata, scale)
        grid = _build_grid(pre_ep.native, post_ep.native, pre_path, post_path, target_crs, resolution)
        epochs = []
        for ep in (pre_ep, post_ep):
            if grid.crs is None:  # no CRS on either: aligned in pixel space by definition
                off: tuple[int, int] | None = (0, 0)
            elif ep.native.crs == grid.crs:
                off = integer_offset(ep.native.transform, grid.transform)
            else:
                off = None
            epochs.append(replace(ep, offset=off))
    finally:
        for ds in files:
            ds.close()
    pair = ScenePair(grid, *epochs)
    try:
        pair._scan()
    except BaseException:
        pair.close()
        raise
    return pair
