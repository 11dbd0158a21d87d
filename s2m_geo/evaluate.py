"""Score class rasters against labels (``s2m-geo evaluate``), streaming block by block.

One confusion matrix is accumulated over every pixel of every pair (rows = prediction), then
the SCD scores of :mod:`s2m_geo.metrics` are computed once. Pixels that are nodata in either
raster, or 255 (ignore) in the label, are left out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from .classes import NODATA_CLASS, ClassTable
from .errors import InputError
from .metrics import confusion_matrix, scd_scores

RASTER_SUFFIXES = {".tif", ".tiff", ".png", ".vrt", ".jp2", ".img"}

#: Pixels per strip :func:`class_counts` reads (a strip of 60000 columns is 69 rows): a
#: few int64 copies of one strip are its memory, whatever the raster's height or width.
STRIP_PIXELS = 1 << 22


def open_raster(path: str | Path):
    """Open a raster read-only; a missing or unreadable file is an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError:
        raise InputError(f"{path}: not a raster GDAL can read; give a GeoTIFF or another GDAL raster") from None


def pair_files(pred: Path, label: Path) -> list[tuple[Path, Path]]:
    """(prediction, label) pairs: two files, or two folders matched by file stem."""
    if pred.is_dir() != label.is_dir():
        raise InputError(f"{pred if not pred.is_dir() else label}: give two files or two folders, not one of each")
    if not pred.is_dir():
        return [(pred, label)]
    preds = {p.stem: p for p in sorted(pred.iterdir()) if p.suffix.lower() in RASTER_SUFFIXES}
    labels = {p.stem: p for p in sorted(label.iterdir()) if p.suffix.lower() in RASTER_SUFFIXES}
    common = sorted(set(preds) & set(labels))
    if not common:
        raise InputError(f"{pred}: no file name matches one in {label}; predictions and labels are paired by name")
    missing = sorted(set(labels) - set(preds))
    if missing:
        raise InputError(
            f"{pred}: no prediction for label '{missing[0]}' ({len(missing)} missing); predict every label first"
        )
    return [(preds[s], labels[s]) for s in common]


def _check_values(a: np.ndarray, valid: np.ndarray, k: int, path: Path, table: ClassTable) -> None:
    bad = valid & ((a < 0) | (a >= k))
    if bad.any():
        raise InputError(
            f"{path}: value {int(a[bad][0])} is not a class id of '{table.name}' "
            f"(0..{k - 1}); pass the matching {{classes}} table",
            params=("classes",),
        )


def _check_nodata(ds: Any, path: Path, table: ClassTable) -> None:
    """A declared nodata that is also a class id would drop that class from the scores."""
    nodata = ds.nodata
    if nodata is None or not np.isfinite(nodata) or nodata != int(nodata):
        return
    if 0 <= int(nodata) < table.num_classes:
        name = table[int(nodata)].name
        raise InputError(
            f"{path}: declares nodata {int(nodata)}, which is the class id of '{name}', so none of its "
            f"pixels would be scored; remove the nodata value (gdal_edit.py -unsetnodata) or set it to "
            f"{NODATA_CLASS}"
        )


def _check_grids(p: Any, lab: Any, pred_path: Path, label_path: Path) -> None:
    if (p.height, p.width) != (lab.height, lab.width):
        raise InputError(
            f"{pred_path}: {p.width}x{p.height} pixels but the label {label_path} is "
            f"{lab.width}x{lab.height}; predict on the label's grid"
        )
    if (p.crs is None) != (lab.crs is None):
        has, lacks = (pred_path, label_path) if lab.crs is None else (label_path, pred_path)
        raise InputError(
            f"{lacks}: has no CRS but {has} has one, so they cannot be checked to be one grid; "
            f"georeference it like {has} (e.g. gdal_edit.py -a_srs -a_ullr)"
        )
    if p.crs and (p.crs != lab.crs or not p.transform.almost_equals(lab.transform)):
        raise InputError(f"{pred_path}: not on the same grid as {label_path}; predict on the label's grid")


def _read_classes(ds: Any, window: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Class ids (int64) and where they are valid: not nodata, finite; a fractional value is
    an :class:`InputError`."""
    raw = ds.read(1, window=window)
    valid = np.ones(raw.shape, bool)
    if raw.dtype.kind == "f":
        valid &= np.isfinite(raw)
        frac = valid & (raw != np.floor(np.where(valid, raw, 0)))
        if frac.any():
            raise InputError(
                f"{path}: holds fractional values (e.g. {float(raw[frac][0]):g}); give class ids (whole numbers)"
            )
    if ds.nodata is not None and np.isfinite(ds.nodata):
        valid &= raw != ds.nodata
    return np.where(valid, raw, 0).astype(np.int64), valid


def accumulate(pred_path: Path, label_path: Path, table: ClassTable) -> np.ndarray:
    """The confusion matrix of one prediction/label pair."""
    k = table.num_classes
    hist = np.zeros((k, k), np.int64)
    with open_raster(pred_path) as p, open_raster(label_path) as lab:
        _check_grids(p, lab, pred_path, label_path)
        _check_nodata(p, pred_path, table)
        _check_nodata(lab, label_path, table)
        for _, win in p.block_windows(1):
            a, valid_a = _read_classes(p, win, pred_path)
            b, valid_b = _read_classes(lab, win, label_path)
            valid = valid_a & valid_b & (b != NODATA_CLASS)
            _check_values(a, valid, k, pred_path, table)
            _check_values(b, valid, k, label_path, table)
            hist += confusion_matrix(a, b, k, valid=valid)
    return hist


def evaluate_rasters(
    pred: str | Path, label: str | Path, table: ClassTable, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """SCD scores of class rasters (two files or two folders) plus the confusion matrix."""
    pairs = pair_files(Path(pred), Path(label))
    k = table.num_classes
    hist = np.zeros((k, k), np.int64)
    for i, (a, b) in enumerate(pairs):
        hist += accumulate(a, b, table)
        if progress:
            progress(i + 1, len(pairs))
    if hist.sum() == 0:
        raise InputError(f"{label}: no valid pixel to score (all nodata or ignore); check the labels")
    scores = scd_scores(hist)
    scores["confusion_matrix"] = hist.tolist()
    scores["pairs"] = len(pairs)
    return scores


def class_counts(path: str | Path, table: ClassTable, pixels: int = STRIP_PIXELS) -> tuple[np.ndarray, np.ndarray, Any]:
    """Per-class pixel counts per row (K+1, H) and per column (K+1, W) of band 1 of a class
    raster, read in strips of whole rows of at most ``pixels`` pixels (memory does not grow
    with the raster, in either dimension), nodata counted as 0 (no change); and its profile.
    Of a sparse GeoTIFF only the blocks it stores are read (:func:`written_blocks`): the time
    follows them, not the raster's size. Unknown ids are an :class:`InputError`."""
    from .describe.rules import class_row_col_counts
    from .predict.pipeline import GDAL_CACHE_MB
    from .predict.tiling import held_rects

    path = Path(path)
    k = table.num_classes
    # GDAL's block cache (5% of RAM by default) would otherwise fill with every block read
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB << 20), open_raster(path) as ds:
        per_row = np.zeros((k, ds.height), np.int64)
        per_col = np.zeros((k, ds.width), np.int64)
        held = written_blocks(ds)
        if held is None:
            rows = max(1, pixels // ds.width)
            windows = [Window(0, r0, ds.width, min(rows, ds.height - r0)) for r0 in range(0, ds.height, rows)]
        else:
            # only the blocks the file holds are read; the others read as nodata, which counts
            # as no change: every pixel starts there and the read ones are moved out of it
            per_row[0] = ds.width
            per_col[0] = ds.height
            bh, bw = ds.block_shapes[0]
            rects = held_rects(held, (bh, bw), ds.height, ds.width, max(1, pixels // (bh * bw)))
            windows = [Window(r.col, r.row, r.width, r.height) for r in rects]
        for window in windows:
            r0, c0, h, w = window.row_off, window.col_off, window.height, window.width
            mask, valid = _read_classes(ds, window, path)
            mask = np.where(valid, mask, 0)
            _check_values(mask, valid, k, path, table)
            strip_rows, strip_cols = class_row_col_counts(mask, k)
            per_row[:, r0 : r0 + h] += strip_rows
            per_col[:, c0 : c0 + w] += strip_cols
            if held is not None:
                per_row[0, r0 : r0 + h] -= w
                per_col[0, c0 : c0 + w] -= h
        return per_row, per_col, ds.profile


def written_blocks(ds: Any) -> np.ndarray | None:
    """Which blocks of band 1 a GeoTIFF stores (bool, block rows x block columns), or None
    when that is not known (another format) or every block is stored. A block never written
    (a sparse file: ``predict`` leaves a mosaic's nodata frame so) reads as nodata, or 0
    without one, and is not in the file; GDAL tells by its ``BLOCK_OFFSET_x_y``."""
    if ds.driver != "GTiff":
        return None
    bh, bw = ds.block_shapes[0]
    item = ds.get_tag_item
    held = np.array(
        [
            [item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1) is not None for x in range(-(-ds.width // bw))]
            for y in range(-(-ds.height // bh))
        ],
        bool,
    )
    # none at all: rather a GDAL that does not say than an empty file (then read whole)
    return None if held.all() or not held.any() else held
