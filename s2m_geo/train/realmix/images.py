"""Real images on disk: finding them (label rasters left out) and :class:`ImagePool`, random
RGB uint8 crops of them."""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import InputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
#: Path parts that mark label rasters: never used as imagery (labels of change datasets are
#: evaluation-only).
LABEL_PARTS = {
    "label",
    "labels",
    "mask",
    "masks",
    "gt",
    "cm",
    "groundtruth",
    "ground_truth",
    "change_map",
    "changemap",
    "fire_perimeter",
}
#: Path parts that mark tiles whose roofs may be cut out as building donors.
DONOR_PARTS = ("building", "residential", "mobilehome")


Array = np.ndarray


def _labelish(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    names = [p.lower() for p in parts[:-1]] + [path.stem.lower()]
    return any(n in LABEL_PARTS for n in names)


def find_images(images: str | Path | Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(root, file)`` of every .png/.tif/.jpg under the folder(s) (recursive, sorted), leaving
    out label rasters (files or folders named ``label``, ``mask``, ``gt``, ``cm`` ...: see
    :data:`LABEL_PARTS`); a missing folder is an InputError."""
    roots = [images] if isinstance(images, (str, Path)) else list(images)
    if not roots:
        raise InputError("realmix: no images folder given; set 'images' to a folder of single-date RGB images")
    out: list[tuple[Path, Path]] = []
    for r in roots:
        root = Path(r).expanduser()
        if not root.exists():
            raise InputError(
                f"{root}: realmix images folder not found; point 'images' at a folder of "
                f"single-date RGB images (.png/.tif/.jpg), e.g. "
                f"<shared>/realdata/usgs-ucmerced-urban/images (in a training config, relative to "
                f"the config file)"
            )
        files = (
            [root]
            if root.is_file()
            else sorted(
                (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                key=lambda p: p.relative_to(root).as_posix(),
            )
        )
        out += [
            (root if root.is_dir() else root.parent, p)
            for p in files
            if not _labelish(p, root if root.is_dir() else root.parent)
        ]
    if not out:
        raise InputError(
            f"{', '.join(str(r) for r in roots)}: no .png/.tif/.jpg images found for realmix; "
            f"point 'images' at a folder of single-date RGB images"
        )
    return out


class ImagePool:
    """Random ``size x size`` RGB uint8 crops of a list of real images (windowed reads; files
    with fewer than 3 bands are left out; other dtypes are stretched per crop, 2-98 %)."""

    def __init__(self, files: Sequence[Path], size: int = 256, cache: int = 96) -> None:
        import rasterio

        self.size = size
        self.files: list[Path] = []
        self.shapes: list[tuple[int, int, str]] = []
        for p in files:
            try:
                with _quiet(), rasterio.open(p) as ds:
                    if ds.count >= 3:
                        self.files.append(Path(p))
                        self.shapes.append((ds.height, ds.width, ds.dtypes[0]))
            except rasterio.errors.RasterioIOError:
                continue
        if not self.files:
            raise InputError(
                f"realmix: none of the {len(files)} image file(s) is a readable 3-band image; "
                f"point 'images' at RGB imagery"
            )
        self._cache: OrderedDict[int, Array] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, i: int, window=None) -> Array:
        import rasterio

        with _quiet(), rasterio.open(self.files[i]) as ds:
            a = ds.read([1, 2, 3], window=window)
        return np.moveaxis(a, 0, -1)

    def _small(self, i: int) -> Array:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        a = self._read(i)
        self._cache[i] = a
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return a

    def crop(self, i: int, rng: np.random.Generator) -> Array:
        """A random crop of image ``i`` (upsampled when smaller than ``size``), randomly rotated/flipped."""
        from rasterio.windows import Window

        h, w, dtype = self.shapes[i]
        s = self.size
        a: Array | None = None
        if h * w <= 4 * s * s or h < s or w < s:
            full = self._small(i)
            if h < s or w < s:
                full = _resize(_to_uint8(full), max(s / h, s / w))
            for _ in range(6):
                y = int(rng.integers(0, full.shape[0] - s + 1))
                x = int(rng.integers(0, full.shape[1] - s + 1))
                a = full[y : y + s, x : x + s]
                if _valid(a):
                    break
        else:
            for _ in range(8):
                y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                a = self._read(i, Window(x, y, s, s))
                if _valid(a):
                    break
        assert a is not None
        a = _to_uint8(a)
        a = np.rot90(a, int(rng.integers(4)))
        if rng.random() < 0.5:
            a = a[:, ::-1]
        return np.ascontiguousarray(a)


def _valid(a: Array) -> bool:
    return float(np.mean(np.all(a == 0, axis=-1))) < 0.02


def _to_uint8(a: Array) -> Array:
    if a.dtype == np.uint8:
        return a
    x = a.astype(np.float32)
    out = np.zeros(x.shape, np.uint8)
    ok = np.any(x != 0, axis=-1)
    for k in range(x.shape[-1]):
        vals = x[..., k][ok]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, [2, 98])
        out[..., k] = np.clip((x[..., k] - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return out


def _resize(a: Array, factor: float) -> Array:
    from PIL import Image

    h, w = a.shape[:2]
    size = (max(1, math.ceil(w * factor)), max(1, math.ceil(h * factor)))
    return np.asarray(Image.fromarray(a).resize(size, Image.BILINEAR))


class _quiet(warnings.catch_warnings):
    def __enter__(self):
        from rasterio.errors import NotGeoreferencedWarning

        out = super().__enter__()
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return out
