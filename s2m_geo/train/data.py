"""Training data: labelled change pairs as tiles, with geometric augmentation and S2M text.

Two sources, one dataset:

- folders in the LEVIR-CD / SECOND layout: ``ROOT/A/x.png``, ``ROOT/B/x.png``,
  ``ROOT/label/x.png`` matched by file stem (any format GDAL reads);
- georeferenced scene triplets (pre, post and label rasters on one grid), tiled on the fly.

Every pair is cut into ``tile_size`` windows (the last row/column of windows is shifted
inwards; pairs smaller than a tile are zero-padded, the padding labelled ``ignore``). The
flip/rot90 augmentation is drawn from ``(seed, epoch, index)``, so a run is reproducible
whatever the number of loader workers, and the S2M sentences are generated from the label
**after** the augmentation, so "northwest" always describes the tile the model sees.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from torch.utils.data import Dataset

from ..classes import NODATA_CLASS, ClassTable
from ..describe import NO_CHANGE_SENTENCE, describe_mask
from ..errors import InputError
from ..model.normalization import IMAGENET, Normalization

IGNORE_INDEX = NODATA_CLASS  # label pixels the losses skip: the nodata of class rasters
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".jp2", ".vrt"}


@dataclass(frozen=True)
class PairSource:
    """One labelled pair: three rasters of the same size."""

    name: str
    pre: Path
    post: Path
    label: Path
    height: int
    width: int


def _open(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            return rasterio.open(path)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"{path}: cannot be read as a raster ({exc}); check the file") from None


def _source(name: str, pre: Path, post: Path, label: Path) -> PairSource:
    shapes = {}
    for kind, p in (("pre", pre), ("post", post), ("label", label)):
        if not Path(p).is_file():
            raise InputError(f"{p}: {kind} raster not found; check the dataset paths")
        with _open(Path(p)) as ds:
            shapes[kind] = (ds.height, ds.width)
    if len(set(shapes.values())) != 1:
        raise InputError(
            f"{label}: pre, post and label differ in size {shapes}; put the three "
            f"rasters on one grid first (e.g. gdalwarp -tap)"
        )
    h, w = shapes["label"]
    return PairSource(name, Path(pre), Path(post), Path(label), h, w)


def folder_sources(
    root: str | Path, pre_dir: str = "A", post_dir: str = "B", label_dir: str = "label"
) -> list[PairSource]:
    """Pairs of a LEVIR/SECOND-layout folder, matched by file stem."""
    root = Path(root)
    dirs = {k: root / d for k, d in (("pre", pre_dir), ("post", post_dir), ("label", label_dir))}
    for d in dirs.values():
        if not d.is_dir():
            raise InputError(
                f"{d}: folder not found; a dataset folder needs {pre_dir}/, {post_dir}/ and {label_dir}/ side by side"
            )
    files = {k: {p.stem: p for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES} for k, d in dirs.items()}
    stems = sorted(files["label"])
    if not stems:
        raise InputError(f"{dirs['label']}: no label images found; expected e.g. .png or .tif files")
    missing = [s for s in stems if s not in files["pre"] or s not in files["post"]]
    if missing:
        raise InputError(
            f"{root}: {len(missing)} label(s) lack a pre or post image, e.g. "
            f"'{missing[0]}'; every label needs {pre_dir}/ and {post_dir}/ images of the same name"
        )
    return [_source(s, files["pre"][s], files["post"][s], files["label"][s]) for s in stems]


def scene_sources(triplets: Sequence[dict[str, Any]]) -> list[PairSource]:
    """Pairs from ``[{"pre": ..., "post": ..., "label": ..., "name": optional}, ...]``."""
    out = []
    for i, t in enumerate(triplets):
        try:
            out.append(
                _source(
                    str(t.get("name", Path(t["label"]).stem if i == 0 else f"scene{i}")),
                    Path(t["pre"]),
                    Path(t["post"]),
                    Path(t["label"]),
                )
            )
        except KeyError as exc:
            raise InputError(f"scene triplet {i}: missing key {exc}; give pre, post and label") from None
    return out


def tile_windows(height: int, width: int, tile: int, stride: int | None = None) -> list[Window]:
    """Windows of ``tile`` size covering the image every ``stride`` (<= tile) pixels; the last
    ones are shifted inwards — the prediction's tile grid (:func:`~s2m_geo.predict.tiling.axis_starts`)."""
    from ..predict.tiling import axis_starts

    overlap = tile - (stride or tile)
    rows, cols = axis_starts(height, tile, overlap), axis_starts(width, tile, overlap)
    return [Window(c, r, min(tile, width), min(tile, height)) for r in rows for c in cols]


def augment(
    pre: np.ndarray, post: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same random rot90 (k = 0..3) and horizontal flip on (C,H,W) images and (H,W) label."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def f(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k, axes=(-2, -1))
        return np.flip(a, -1) if flip else a

    return (np.ascontiguousarray(f(pre)), np.ascontiguousarray(f(post)), np.ascontiguousarray(f(label)))


class ChangeTiles(Dataset):
    """Tiles of labelled pairs, as dicts ``pre``, ``post`` (float tensors C×T×T), ``label``
    (int64 T×T), ``sentences`` (the S2M sentences of the label), ``name``."""

    def __init__(
        self,
        sources: Sequence[PairSource],
        table: ClassTable,
        tile_size: int = 256,
        bands: Sequence[int] = (1, 2, 3),
        post_bands: Sequence[int] | None = None,
        normalization: Normalization = IMAGENET,
        augment: bool = False,
        seed: int = 0,
        stride: int | None = None,
    ) -> None:
        if not sources:
            raise InputError("the dataset is empty; give at least one labelled pair")
        self.sources = list(sources)
        self.table = table
        self.tile_size = tile_size
        self.bands, self.post_bands = list(bands), list(post_bands or bands)
        self.normalization = normalization
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.index = [
            (i, w) for i, s in enumerate(self.sources) for w in tile_windows(s.height, s.width, tile_size, stride)
        ]
        self._binary = table.num_classes == 2

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draw of an epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, path: Path, bands: list[int], win: Window) -> np.ndarray:
        with _open(path) as ds:
            if max(bands) > ds.count:
                raise InputError(
                    f"{path}: has {ds.count} band(s), band {max(bands)} was asked for; set 'bands' in the config"
                )
            return ds.read(bands, window=win)

    def _label(self, src: PairSource, win: Window) -> np.ndarray:
        lab = self._read(src.label, [1], win)[0].astype(np.int64)
        if self._binary:  # LEVIR-style 0/255 masks for a two-class table
            return (lab > 0).astype(np.int64)
        bad = (lab >= self.table.num_classes) & (lab != IGNORE_INDEX)
        if bad.any():
            raise InputError(
                f"{src.label}: label value {int(lab[bad][0])} is not a class id of "
                f"'{self.table.name}' (0..{self.table.num_classes - 1}, {IGNORE_INDEX} = ignore); "
                f"use the matching class table"
            )
        return lab

    def __getitem__(self, i: int) -> dict[str, Any]:
        si, win = self.index[i]
        src = self.sources[si]
        pre = self._read(src.pre, self.bands, win)
        post = self._read(src.post, self.post_bands, win)
        label = self._label(src, win)
        t = self.tile_size
        if label.shape != (t, t):  # a pair smaller than a tile: pad, padding ignored
            ph, pw = t - label.shape[0], t - label.shape[1]
            pre = np.pad(pre, ((0, 0), (0, ph), (0, pw)))
            post = np.pad(post, ((0, 0), (0, ph), (0, pw)))
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.augment:
            pre, post, label = augment(pre, post, label, rng)
        text_mask = np.where(label == IGNORE_INDEX, 0, label)
        sentences = [s for _, s in describe_mask(text_mask, self.table, rng)] or [NO_CHANGE_SENTENCE]
        return {
            "pre": torch.from_numpy(self.normalization(pre)),
            "post": torch.from_numpy(self.normalization(post)),
            "label": torch.from_numpy(label),
            "sentences": sentences,
            "name": f"{src.name}:{int(win.row_off)}:{int(win.col_off)}",
        }


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep sentences and names as lists."""
    return {
        "pre": torch.stack([b["pre"] for b in batch]),
        "post": torch.stack([b["post"] for b in batch]),
        "label": torch.stack([b["label"] for b in batch]),
        "sentences": [b["sentences"] for b in batch],
        "name": [b["name"] for b in batch],
    }
