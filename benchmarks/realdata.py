"""Real-imagery benchmark: binary change scores and false alarms on real scenes (prints figures; not a test).

Data: ``../shared/realdata`` next to the clone (``--shared PATH`` or ``S2M_REALDATA`` to point
elsewhere; when it is absent the script says so and exits 0). Each folder's ``SOURCE.md``
gives its layout and licence; the labelled sets are used for evaluation only.

For every model (``--model PATH`` or ``--model NAME=PATH``, repeatable; default: the shipped
default model, what ``s2m-geo predict`` uses without ``--model``) it runs the real prediction
path — :func:`s2m_geo.predict.pipeline.predict`, the call behind ``s2m-geo predict pre post -o out.tif``,
writing a class-raster COG into a temporary folder — and scores **binary** change: a pixel is
"changed" when its class is not 0 (no change) and not 255 (nodata); the label is changed
where it is > 0.

- **Labelled sets** (``levir``, ``dsifn``, ``airchange``, ``oscd``): precision, recall, F1 and
  IoU per set and pooled (one confusion matrix over every pixel of every set). The PNG pairs
  (LEVIR, DSIFN, AirChange) are not georeferenced: ``predict`` takes a pair without CRS as
  aligned in pixel space when both have the same size, so the files are given as they are.
  OSCD: bands 1,2,3 (B04,B03,B02 = RGB) of the 4-band files (``--set-bands oscd=...``).
- **Identical pairs**: every real image of every set (both dates of the labelled pairs, the
  unlabelled single-date sets, a fixed sample of UCMerced tiles) given as pre *and* post: the
  percentage of valid pixels flagged changed, and how many images have any changed pixel.
- **Same-date pseudo-change**: post = pre (a centre crop of at most ``--pc-crop`` px) with one
  realistic perturbation — ``radiometric`` (per-band gain 0.9–1.1, bias ±3 % of the image's
  range, gamma 0.9–1.1), ``blur`` (Gaussian, σ = 1 px), ``shift`` (half-pixel misregistration:
  bilinear shift by 0.5 px down and 0.5 px right), ``haze`` (blend 20 % towards a bright grey)
  — and all four in that order (``combined``). Fixed seed: the same run, the same figures.
- **Speed**: seconds of ``predict`` wall time per megapixel over the labelled pairs (model
  loaded once, one untimed warm-up prediction first).

Two baselines get the same scoring: ``everything changed`` (every valid pixel flagged) and
``CVA + Otsu`` (change-vector analysis: per-image, per-band standardisation over the valid
pixels, Euclidean norm of the difference, Otsu threshold of that image's magnitudes).

    python benchmarks/realdata.py                          # everything (see docs/realdata.md)
    python benchmarks/realdata.py --quick                  # fewer images: a quick look
    python benchmarks/realdata.py --sets levir,oscd --model mine=runs/x/model.safetensors \\
        --model default --json realdata.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2m_geo.classes import NODATA_CLASS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("S2M_REALDATA", ROOT.parent / "shared" / "realdata"))
SEED = 20240601
PERTURBATIONS = ("radiometric", "blur", "shift", "haze", "combined")
EVERYTHING = "everything changed"
CVA = "CVA + Otsu"


@dataclass(frozen=True)
class SetInfo:
    """One folder of ../shared/realdata as the benchmark uses it."""

    name: str
    folder: str
    title: str
    labelled: bool
    bands: tuple[int, ...]  # default bands (for stacked sets: band numbers of the product)
    label_encoding: str = ""


SETS: dict[str, SetInfo] = {
    s.name: s
    for s in [
        SetInfo(
            "levir",
            "changeformer-levir-dsifn-samples/samples_LEVIR",
            "LEVIR-CD",
            True,
            (1, 2, 3),
            "label PNG 0 = no change, 255 = change",
        ),
        SetInfo(
            "dsifn",
            "changeformer-levir-dsifn-samples/samples_DSIFN",
            "DSIFN-CD",
            True,
            (1, 2, 3),
            "label PNG 0 = no change, 255 = change",
        ),
        SetInfo(
            "airchange",
            "sztaki-airchange",
            "SZTAKI AirChange",
            True,
            (1, 2, 3),
            "label PNG 0 = no change, 255 = change (thresholded at > 127)",
        ),
        SetInfo(
            "oscd", "oscd-sentinel2-urban", "OSCD (14 cities)", True, (1, 2, 3), "label.tif 0 = no change, 1 = change"
        ),
        SetInfo("ucmerced", "usgs-ucmerced-urban", "UCMerced urban", False, (1, 2, 3)),
        SetInfo("rasterio-rgb", "rasterio-rgb-byte", "rasterio RGB.byte", False, (1, 2, 3)),
        SetInfo("cold-springs", "cold-springs-fire-landsat8", "Cold Springs Landsat 8", False, (4, 3, 2)),
        SetInfo("landsat5", "debian-r-cran-satellite-landsat5", "Landsat 5 (r-cran-satellite)", False, (3, 2, 1)),
        SetInfo("spacenet", "solaris-spacenet-sample", "SpaceNet PAN sample", False, (1, 1, 1)),
    ]
}
LABELLED = [s for s in SETS.values() if s.labelled]


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    """An image as 3 (or more) bands, each taken from one band of one file."""

    set: str
    name: str
    sources: tuple[tuple[Path, int], ...]

    @property
    def single_file(self) -> Path | None:
        """The one file all bands come from, or None when they are stacked from several."""
        files = {p for p, _ in self.sources}
        return next(iter(files)) if len(files) == 1 else None

    @property
    def bands(self) -> list[int]:
        """The 1-based band numbers within :attr:`single_file`."""
        return [b for _, b in self.sources]


@dataclass(frozen=True)
class PairSpec:
    """A labelled pair."""

    set: str
    name: str
    pre: ImageSpec
    post: ImageSpec
    label: Path


@dataclass
class Image:
    """Pixels of an :class:`ImageSpec` (native values as float64) and what is needed to write them."""

    data: np.ndarray  # (C, H, W) float64
    valid: np.ndarray  # (H, W) bool
    dtype: str
    nodata: float | None
    crs: Any
    transform: Any


@dataclass
class Catalogue:
    """What the benchmark runs on."""

    pairs: dict[str, list[PairSpec]] = field(default_factory=dict)
    images: dict[str, list[ImageSpec]] = field(default_factory=dict)  # identical-pair images
    pseudo: list[ImageSpec] = field(default_factory=list)  # pseudo-change images


def select(cat: Catalogue, names: Sequence[str]) -> Catalogue:
    """Only the pairs and images whose name contains one of ``names`` (e.g. a held-out site)."""

    def keep(name: str) -> bool:
        return any(n in name for n in names)

    return Catalogue(
        {s: [p for p in v if keep(p.name)] for s, v in cat.pairs.items()},
        {s: [i for i in v if keep(i.name)] for s, v in cat.images.items()},
        [i for i in cat.pseudo if keep(i.name)],
    )


def _img(set_name: str, name: str, path: Path, bands: Sequence[int]) -> ImageSpec:
    return ImageSpec(set_name, name, tuple((path, int(b)) for b in bands))


def _spaced(items: list, n: int) -> list:
    """``n`` items spread evenly over ``items`` (all when n <= 0 or n >= len)."""
    if n <= 0 or n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def _labelled_pairs(name: str, root: Path, b: tuple[int, ...]) -> list[PairSpec] | None:
    """The labelled pairs of a set (None for a set without labels)."""
    if name in ("levir", "dsifn", "airchange"):
        pairs = []
        for a in sorted((root / "A").glob("*.png")):
            lab = root / "label" / a.name
            post = root / "B" / a.name
            if lab.exists() and post.exists():
                pairs.append(
                    PairSpec(name, a.stem, _img(name, f"A/{a.stem}", a, b), _img(name, f"B/{a.stem}", post, b), lab)
                )
        return pairs
    if name == "oscd":
        return [
            PairSpec(
                name,
                city.name,
                _img(name, f"{city.name}/pre", city / "pre.tif", b),
                _img(name, f"{city.name}/post", city / "post.tif", b),
                city / "label.tif",
            )
            for city in sorted(d for d in root.iterdir() if (d / "label.tif").exists())
        ]
    return None


def _unlabelled_images(name: str, root: Path, b: tuple[int, ...], ucm_sample: int, seed: int) -> list[ImageSpec]:
    """The images of a set without labels (for identical pairs and pseudo-change)."""
    if name == "ucmerced":
        tiles = sorted((root / "images").glob("*/*.png"))
        if 0 < ucm_sample < len(tiles):
            pick = np.random.default_rng(seed).choice(len(tiles), ucm_sample, replace=False)
            tiles = [tiles[i] for i in sorted(pick.tolist())]
        return [_img(name, f"{t.parent.name}/{t.stem}", t, b) for t in tiles]
    if name == "rasterio-rgb":
        return [_img(name, "RGB.byte", root / "RGB.byte.tif", b)]
    if name == "spacenet":
        return [_img(name, "sample_geotiff", root / "sample_geotiff.tif", b)]
    if name == "cold-springs":
        return [
            ImageSpec(name, d.name, tuple((next(d.glob(f"*_sr_band{k}_crop.tif")), 1) for k in b))
            for d in sorted(root.glob("p*_2016*"))
        ]
    if name == "landsat5":
        return [
            ImageSpec(
                name, d.name, tuple((next(p for p in d.iterdir() if p.stem.upper().endswith(f"_B{k}")), 1) for k in b)
            )
            for d in sorted(p for p in root.iterdir() if p.is_dir())
        ]
    raise ValueError(f"unknown set {name!r}")


def discover(
    shared: Path,
    sets: Sequence[str],
    bands: dict[str, tuple[int, ...]],
    ucm_sample: int,
    identical_per_set: int,
    pc_per_set: int,
    seed: int = SEED,
) -> Catalogue:
    """The labelled pairs, identical-pair images and pseudo-change images of ``sets`` under
    ``shared`` (sets whose folder is missing are left out with a message on stderr)."""
    cat = Catalogue()
    for name in sets:
        info = SETS[name]
        root = shared / info.folder
        if not root.is_dir():
            log(f"set {name}: {root} not found, skipped")
            continue
        b = bands.get(name, info.bands)
        pairs = _labelled_pairs(name, root, b)
        if pairs is not None:
            cat.pairs[name] = pairs
            if name == "oscd":
                images = [p.pre for p in pairs] + [p.post for p in pairs]
            else:  # every image of both folders, labelled or not
                images = [
                    _img(name, f"{e}/{p.stem}", p, b) for e in ("A", "B") for p in sorted((root / e).glob("*.png"))
                ]
            pc_candidates = [p.pre for p in pairs]
        else:
            images, pc_candidates = _unlabelled_images(name, root, b, ucm_sample, seed), []
        if identical_per_set > 0 and name != "ucmerced":
            images = _spaced(images, identical_per_set)
        cat.images[name] = images
        cat.pseudo += _spaced(pc_candidates or images, pc_per_set)
    return cat


class _quiet:
    """Silence rasterio's NotGeoreferencedWarning (the PNG sets have no georeference)."""

    def __enter__(self) -> None:
        from rasterio.errors import NotGeoreferencedWarning

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", NotGeoreferencedWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def read_image(spec: ImageSpec, crop: int | None = None) -> Image:
    """Read an image's bands (a centre crop of at most ``crop`` px a side when given).

    Valid where any selected band's GDAL mask is non-zero and the value is finite (the rule
    ``predict`` applies).
    """
    import rasterio
    from rasterio.windows import Window

    data, masks = [], []
    meta: dict[str, Any] = {}
    with _quiet():
        for path, band in spec.sources:
            with rasterio.open(path) as ds:
                win = None
                if crop:
                    h, w = min(crop, ds.height), min(crop, ds.width)
                    win = Window((ds.width - w) // 2, (ds.height - h) // 2, w, h)
                if not meta:
                    meta = dict(
                        dtype=ds.dtypes[band - 1],
                        nodata=ds.nodata,
                        crs=ds.crs,
                        transform=ds.window_transform(win) if win is not None else ds.transform,
                    )
                data.append(ds.read(band, window=win).astype(np.float64))
                masks.append(ds.read_masks(band, window=win) > 0)
    arr = np.stack(data)
    valid = np.any(np.stack(masks), axis=0) & np.isfinite(arr).all(axis=0)
    return Image(arr, valid, meta["dtype"], meta["nodata"], meta["crs"], meta["transform"])


def read_label(path: Path) -> np.ndarray:
    """A label as bool "changed" (> 0: LEVIR/DSIFN/AirChange 0/255, OSCD 0/1)."""
    import rasterio

    with _quiet(), rasterio.open(path) as ds:
        return ds.read(1) > 0


def quantize(x: np.ndarray, valid: np.ndarray, dtype: str, nodata: float | None) -> np.ndarray:
    """Float pixels back to ``dtype`` (rounded, clipped to its range and kept off the nodata
    value); invalid pixels become nodata (0 when there is none)."""
    dt = np.dtype(dtype)
    y = np.array(x, np.float64)
    if np.issubdtype(dt, np.integer):
        lo, hi = float(np.iinfo(dt).min), float(np.iinfo(dt).max)
        if nodata is not None and nodata == lo:
            lo += 1
        if nodata is not None and nodata == hi:
            hi -= 1
        y = np.clip(np.round(y), lo, hi)
    y[:, ~valid] = nodata if nodata is not None else 0
    return y.astype(dt)


def write_geotiff(path: Path, data: np.ndarray, like: Image) -> Path:
    """Write (C,H,W) ``data`` as a GeoTIFF with ``like``'s dtype, nodata and georeference
    (none for the PNG sets: ``predict`` then works in pixel space)."""
    import rasterio

    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=like.dtype,
        nodata=like.nodata,
    )
    if like.crs:
        profile.update(crs=like.crs, transform=like.transform)
    with _quiet(), rasterio.open(path, "w", **profile) as ds:
        ds.write(quantize(data, like.valid, like.dtype, like.nodata))
    return path


def materialize(spec: ImageSpec, tmp: Path) -> tuple[Path, list[int]]:
    """A file and band list ``predict`` can read for ``spec`` (stacked into a GeoTIFF in ``tmp``
    when its bands come from several files)."""
    if spec.single_file is not None:
        return spec.single_file, spec.bands
    out = tmp / f"stack-{zlib.crc32(f'{spec.set}/{spec.name}'.encode()):08x}.tif"
    if not out.exists():
        img = read_image(spec)
        write_geotiff(out, img.data, img)
    return out, list(range(1, len(spec.sources) + 1))


# --- pseudo-change perturbations ----------------------------------------------------------------


def reference_scale(x: np.ndarray, valid: np.ndarray, dtype: str) -> float:
    """The value treated as "white" for gamma, bias and haze: 255 for uint8, else the 99.5th
    percentile of the valid values (all bands)."""
    if np.dtype(dtype) == np.uint8:
        return 255.0
    vals = x[:, valid]
    return max(float(np.percentile(vals, 99.5)) if vals.size else 1.0, 1.0)


def _masked(fn, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Apply a linear filter to each band with normalised convolution over the valid pixels
    (so nodata is never mixed in)."""
    w = valid.astype(np.float64)
    ww = fn(w)
    out = np.empty_like(x)
    for i, band in enumerate(x):
        num = fn(band * w)
        out[i] = np.where(ww > 1e-6, num / np.maximum(ww, 1e-6), band)
    return out


def radiometric(x: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Per-band gain U(0.9, 1.1) and bias U(-3 %, 3 %) of ``scale``, one gamma U(0.9, 1.1)."""
    c = x.shape[0]
    gain = rng.uniform(0.9, 1.1, c)[:, None, None]
    bias = rng.uniform(-0.03, 0.03, c)[:, None, None] * scale
    gamma = rng.uniform(0.9, 1.1)
    return scale * np.clip(x / scale, 0, None) ** gamma * gain + bias


def blur(x: np.ndarray, valid: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur, σ = ``sigma`` px, per band, over the valid pixels."""
    from scipy import ndimage

    return _masked(lambda a: ndimage.gaussian_filter(a, sigma, mode="nearest"), x, valid)


def misregister(x: np.ndarray, valid: np.ndarray, shift: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Sub-pixel misregistration: bilinear shift by ``shift`` (rows, cols) px per band."""
    from scipy import ndimage

    return _masked(lambda a: ndimage.shift(a, shift, order=1, mode="nearest"), x, valid)


def haze(x: np.ndarray, scale: float, alpha: float = 0.2, grey: float = 0.8) -> np.ndarray:
    """Blend ``alpha`` of the way towards a bright grey (``grey`` × ``scale`` in every band)."""
    return (1 - alpha) * x + alpha * grey * scale


def perturb(x: np.ndarray, valid: np.ndarray, kind: str, rng: np.random.Generator, scale: float) -> np.ndarray:
    """``x`` (C,H,W float) with one pseudo-change ``kind`` of :data:`PERTURBATIONS` applied
    (``combined``: radiometric, blur, shift, haze in that order)."""
    if kind == "radiometric":
        return radiometric(x, rng, scale)
    if kind == "blur":
        return blur(x, valid)
    if kind == "shift":
        return misregister(x, valid)
    if kind == "haze":
        return haze(x, scale)
    if kind == "combined":
        return haze(misregister(blur(radiometric(x, rng, scale), valid), valid), scale)
    raise ValueError(f"unknown perturbation {kind!r}; one of {PERTURBATIONS}")


def perturbation_rng(seed: int, key: str, kind: str) -> np.random.Generator:
    """A generator fixed by the seed, the image and the perturbation (no Python hash salt)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode()), PERTURBATIONS.index(kind)])


# --- baselines and scoring ----------------------------------------------------------------------


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (a value t; "high" class is ``values > t``).

    Histogram of ``bins`` bins over [min, max]; the split maximising the between-class
    variance (as ``skimage.filters.threshold_otsu``), returned as the upper edge of the last
    "low" bin so that ``values > t`` is exactly the "high" class of that split. A constant
    input returns that constant.
    """
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("otsu_threshold of no values")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts).astype(np.float64)
    w1 = w0[-1] - w0
    m = np.cumsum(counts * centres)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    between[w1 == 0] = -1  # the last bin: everything in one class
    return float(edges[int(np.argmax(between)) + 1])


def standardise(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band (x − mean) / std over the valid pixels (std 0: only centred)."""
    out = np.zeros_like(x, dtype=np.float64)
    if not valid.any():
        return out
    for i, band in enumerate(x):
        v = band[valid]
        sd = float(v.std())
        out[i] = (band - float(v.mean())) / (sd if sd > 0 else 1.0)
    return out


def cva_magnitude(pre: np.ndarray, post: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Change-vector magnitude: Euclidean norm over bands of the standardised difference."""
    d = standardise(post, valid) - standardise(pre, valid)
    mag = np.sqrt((d**2).sum(axis=0))
    mag[~valid] = 0.0
    return mag


def cva_change(pre: np.ndarray, post: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """CVA baseline: valid pixels whose change magnitude is above the image's Otsu threshold
    (none when the magnitude is constant, e.g. identical images)."""
    mag = cva_magnitude(pre, post, valid)
    if not valid.any():
        return np.zeros(valid.shape, bool)
    vals = mag[valid]
    if float(vals.max() - vals.min()) <= 1e-9:
        return np.zeros(valid.shape, bool)
    return valid & (mag > otsu_threshold(vals))


def binary_from_classes(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(changed, valid) of a class raster: valid = not nodata 255, changed = valid and not 0."""
    valid = classes != NODATA_CLASS
    return valid & (classes != 0), valid


def binary_confusion(pred: np.ndarray, label: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """2×2 int64 ``hist[pred, label]`` (rows = prediction, as :mod:`s2m_geo.metrics`) of two
    bool rasters over the ``valid`` pixels."""
    from s2m_geo.metrics import confusion_matrix

    return confusion_matrix(
        np.asarray(pred, bool).astype(np.int64), np.asarray(label, bool).astype(np.int64), 2, valid=valid
    )


def binary_scores(hist: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and IoU of the change class of a 2×2 ``hist[pred, label]``, with
    the project's conventions for empty cases (:func:`s2m_geo.metrics.scd_scores`), plus the
    counts ``tp, fp, fn, tn``."""
    from s2m_geo.metrics import scd_scores

    h = np.asarray(hist, np.int64)
    s = scd_scores(h)
    return {
        "precision": s["precision"],
        "recall": s["recall"],
        "f1": s["f1"],
        "iou": s["iou"],
        "tp": int(h[1, 1]),
        "fp": int(h[1, 0]),
        "fn": int(h[0, 1]),
        "tn": int(h[0, 0]),
    }


@dataclass
class FalseAlarms:
    """Pixels flagged changed where nothing changed."""

    flagged: int = 0
    valid: int = 0
    images: int = 0
    images_with_change: int = 0

    def add(self, changed: np.ndarray, valid: np.ndarray) -> None:
        """Count one image."""
        n = int((changed & valid).sum())
        self.flagged += n
        self.valid += int(valid.sum())
        self.images += 1
        self.images_with_change += int(n > 0)

    @property
    def percent(self) -> float:
        """Percent of valid pixels flagged."""
        return 100.0 * self.flagged / self.valid if self.valid else 0.0

    def to_dict(self) -> dict[str, Any]:
        """For the JSON output."""
        return {
            "percent": self.percent,
            "flagged": self.flagged,
            "valid": self.valid,
            "images": self.images,
            "images_with_change": self.images_with_change,
        }


@dataclass
class MethodResult:
    """Everything measured for one model or baseline."""

    name: str
    kind: str  # "model" | "baseline"
    path: str = ""
    hist: dict[str, np.ndarray] = field(default_factory=dict)
    per_pair: dict[str, dict] = field(default_factory=dict)
    identical: dict[str, FalseAlarms] = field(default_factory=dict)
    pseudo: dict[str, FalseAlarms] = field(default_factory=dict)
    pseudo_sets: dict[str, FalseAlarms] = field(default_factory=dict)  # all perturbations, per set
    seconds: float = 0.0
    pixels: int = 0

    def add_pair(self, pair: PairSpec, changed: np.ndarray, label: np.ndarray, valid: np.ndarray) -> None:
        """Score one labelled pair."""
        h = binary_confusion(changed, label, valid)
        self.hist[pair.set] = self.hist.get(pair.set, np.zeros((2, 2), np.int64)) + h
        self.per_pair[f"{pair.set}/{pair.name}"] = binary_scores(h) if h.sum() else {}

    def pooled(self) -> np.ndarray:
        """One confusion matrix over every pixel of every labelled set."""
        return sum(self.hist.values(), np.zeros((2, 2), np.int64))

    def seconds_per_mp(self) -> float | None:
        """Wall seconds per megapixel of the labelled pairs (None when not timed)."""
        return self.seconds / (self.pixels / 1e6) if self.pixels and self.seconds else None

    def fa(self, table: dict[str, FalseAlarms]) -> FalseAlarms:
        """All entries of ``table`` pooled."""
        out = FalseAlarms()
        for f in table.values():
            out.flagged += f.flagged
            out.valid += f.valid
            out.images += f.images
            out.images_with_change += f.images_with_change
        return out

    def to_dict(self) -> dict[str, Any]:
        """For the JSON output."""
        pooled = self.pooled()
        return {
            "kind": self.kind,
            "path": self.path,
            "sets": {k: {**binary_scores(h), "pixels": int(h.sum())} for k, h in self.hist.items() if h.sum()},
            "pooled": {**binary_scores(pooled), "pixels": int(pooled.sum())} if pooled.sum() else None,
            "pairs": self.per_pair,
            "identical": {
                "all": self.fa(self.identical).to_dict(),
                "sets": {k: v.to_dict() for k, v in self.identical.items()},
            },
            "pseudo_change": {
                "all": self.fa(self.pseudo).to_dict(),
                "kinds": {k: v.to_dict() for k, v in self.pseudo.items()},
                "sets": {k: v.to_dict() for k, v in self.pseudo_sets.items()},
            },
            "seconds": self.seconds,
            "megapixels": self.pixels / 1e6,
            "seconds_per_mp": self.seconds_per_mp(),
        }


# --- the model path -----------------------------------------------------------------------------


class ModelRunner:
    """A model run through :func:`s2m_geo.predict.pipeline.predict`, the call behind
    ``s2m-geo predict PRE POST -o OUT.tif``, writing into a temporary folder."""

    def __init__(self, name: str, path: Path, tmp: Path, device: str = "auto", batch_size: int = 4) -> None:
        from s2m_geo.predict.runners import load_change_model

        self.name, self.path, self.tmp = name, path, tmp
        self.model = load_change_model(path, device)
        self.device, self.batch_size = device, batch_size
        self._n = 0

    def classes(self, pre: Path, post: Path, bands: Sequence[int] | None) -> tuple[np.ndarray, float]:
        """The class raster ``predict`` writes for (pre, post), and the seconds it took."""
        import rasterio

        from s2m_geo.predict.pipeline import PredictOptions, predict

        self._n += 1
        out = self.tmp / f"pred-{self._n}.tif"
        opts = PredictOptions(bands=list(bands) if bands else None, device=self.device, batch_size=self.batch_size)
        with _quiet():
            t = time.perf_counter()
            predict(pre, post, out, self.model, opts)
            dt = time.perf_counter() - t
            with rasterio.open(out) as ds:
                c = ds.read(1)
        out.unlink()
        return c, dt


# --- the run ------------------------------------------------------------------------------------


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


def parse_models(values: Sequence[str]) -> list[tuple[str, Path]]:
    """``--model`` values: ``PATH``, ``NAME=PATH``, ``default`` or ``NAME=default`` (the shipped
    default model)."""
    from s2m_geo.predict.runners import default_model_path

    out = []
    for v in values or ["default"]:
        if v == "default":
            out.append((f"default model ({default_model_path().name})", default_model_path()))
            continue
        name, path = v.split("=", 1) if "=" in v and not Path(v).exists() else (None, v)
        if path == "default":
            out.append((name or f"default model ({default_model_path().name})", default_model_path()))
            continue
        path = Path(path)
        if not path.is_file():
            raise SystemExit(f"realdata: --model {v}: {path} not found")
        out.append((name or path.stem, path))
    return out


def _warm_up(runners: Sequence[ModelRunner], tmp: Path) -> None:
    """One untimed prediction per model on random pixels (first calls pay one-off costs)."""
    rng = np.random.default_rng(0)
    for i, r in enumerate(runners):
        n = len(r.model.meta.bands["pre"])  # as many bands as the model takes
        like = Image(np.zeros((n, 256, 256)), np.ones((256, 256), bool), "uint8", None, None, None)
        a = write_geotiff(tmp / f"warm-a{i}.tif", rng.integers(0, 256, like.data.shape).astype(float), like)
        b = write_geotiff(tmp / f"warm-b{i}.tif", rng.integers(0, 256, like.data.shape).astype(float), like)
        r.classes(a, b, list(range(1, n + 1)))


def run(
    cat: Catalogue,
    runners: Sequence[ModelRunner],
    tmp: Path,
    baselines: bool = True,
    seed: int = SEED,
    pc_crop: int = 512,
) -> list[MethodResult]:
    """Measure every model and baseline on the catalogue."""
    results = [MethodResult(r.name, "model", str(r.path)) for r in runners]
    base = [MethodResult(EVERYTHING, "baseline"), MethodResult(CVA, "baseline")] if baselines else []
    allres = results + base

    # 1. labelled pairs
    todo = [p for ps in cat.pairs.values() for p in ps]
    for i, pair in enumerate(todo, 1):
        t0 = time.perf_counter()
        label = read_label(pair.label)
        if base:
            tc = time.perf_counter()
            pre, post = read_image(pair.pre), read_image(pair.post)
            valid = pre.valid & post.valid
            if pre.data.shape != post.data.shape or label.shape != valid.shape:
                raise SystemExit(f"realdata: {pair.set}/{pair.name}: pre, post and label differ in size")
            cva = cva_change(pre.data, post.data, valid)
            base[1].seconds += time.perf_counter() - tc
            base[1].pixels += valid.size
            base[0].add_pair(pair, valid, label, valid)
            base[1].add_pair(pair, cva, label, valid)
        for runner, res in zip(runners, results):
            pre_path, bands = materialize(pair.pre, tmp)
            post_path, _ = materialize(pair.post, tmp)
            classes, dt = runner.classes(pre_path, post_path, bands)
            if classes.shape != label.shape:
                raise SystemExit(
                    f"realdata: {pair.set}/{pair.name}: prediction {classes.shape} differs from label {label.shape}"
                )
            changed, valid_m = binary_from_classes(classes)
            res.add_pair(pair, changed, label, valid_m)
            res.seconds += dt
            res.pixels += classes.size
        log(
            f"[labelled {i}/{len(todo)}] {pair.set}/{pair.name} {label.shape[1]}x{label.shape[0]} "
            f"({time.perf_counter() - t0:.1f} s)"
        )

    # 2. identical pairs
    todo_img = [s for ss in cat.images.values() for s in ss]
    for i, spec in enumerate(todo_img, 1):
        t0 = time.perf_counter()
        img = read_image(spec)
        if base:
            for res, changed in ((base[0], img.valid), (base[1], cva_change(img.data, img.data, img.valid))):
                res.identical.setdefault(spec.set, FalseAlarms()).add(changed, img.valid)
        path, bands = materialize(spec, tmp)
        for runner, res in zip(runners, results):
            classes, _ = runner.classes(path, path, bands)
            changed, valid_m = binary_from_classes(classes)
            res.identical.setdefault(spec.set, FalseAlarms()).add(changed, valid_m)
        log(f"[identical {i}/{len(todo_img)}] {spec.set}/{spec.name} ({time.perf_counter() - t0:.1f} s)")

    # 3. same-date pseudo-change
    for i, spec in enumerate(cat.pseudo, 1):
        t0 = time.perf_counter()
        img = read_image(spec, crop=pc_crop)
        scale = reference_scale(img.data, img.valid, img.dtype)
        pre_path = write_geotiff(tmp / "pc-pre.tif", img.data, img)
        pre_q = quantize(img.data, img.valid, img.dtype, img.nodata).astype(np.float64)
        for kind in PERTURBATIONS:
            rng = perturbation_rng(seed, f"{spec.set}/{spec.name}", kind)
            post = perturb(img.data, img.valid, kind, rng, scale)
            post_path = write_geotiff(tmp / "pc-post.tif", post, img)
            post_q = quantize(post, img.valid, img.dtype, img.nodata).astype(np.float64)
            if base:
                for res, changed in ((base[0], img.valid), (base[1], cva_change(pre_q, post_q, img.valid))):
                    res.pseudo.setdefault(kind, FalseAlarms()).add(changed, img.valid)
                    res.pseudo_sets.setdefault(spec.set, FalseAlarms()).add(changed, img.valid)
            for runner, res in zip(runners, results):
                classes, _ = runner.classes(pre_path, post_path, list(range(1, img.data.shape[0] + 1)))
                changed, valid_m = binary_from_classes(classes)
                res.pseudo.setdefault(kind, FalseAlarms()).add(changed, valid_m)
                res.pseudo_sets.setdefault(spec.set, FalseAlarms()).add(changed, valid_m)
        log(
            f"[pseudo-change {i}/{len(cat.pseudo)}] {spec.set}/{spec.name} "
            f"{img.data.shape[2]}x{img.data.shape[1]} x{len(PERTURBATIONS)} ({time.perf_counter() - t0:.1f} s)"
        )
    return allres


# --- output -------------------------------------------------------------------------------------


def _f(x: float | None, nd: int = 3) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def tables(results: Sequence[MethodResult], cat: Catalogue) -> str:
    """The markdown tables of a run."""
    sets = [s for s in (x.name for x in LABELLED) if cat.pairs.get(s)]
    lines = []
    head = (
        ["method"]
        + [f"{SETS[s].title} F1" for s in sets]
        + ["pooled F1", "pooled IoU", "identical-pair FA %", "pseudo-change FA %", "s/MP"]
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r.name]
        for s in sets:
            h = r.hist.get(s)
            row.append(_f(binary_scores(h)["f1"]) if h is not None and h.sum() else "—")
        p = r.pooled()
        sc = binary_scores(p) if p.sum() else None
        row += [
            _f(sc and sc["f1"]),
            _f(sc and sc["iou"]),
            _f(r.fa(r.identical).percent, 2) if r.identical else "—",
            _f(r.fa(r.pseudo).percent, 2) if r.pseudo else "—",
            _f(r.seconds_per_mp(), 2),
        ]
        lines.append("| " + " | ".join(row) + " |")

    lines += [
        "",
        "F1/IoU: binary change (class != 0) vs label > 0. FA %: percent of valid pixels flagged "
        "changed (identical pairs; same-date pseudo-change pairs, all perturbations pooled). "
        "s/MP: wall seconds per megapixel over the labelled pairs — models: the whole `predict` "
        "call (read, tile, infer, blend, write the COG); CVA: reading both images and computing it.",
        "",
        "Per set (binary change; one confusion matrix per set, pooled = all sets):",
        "",
    ]
    lines += ["| method | set | pairs | Mpx | precision | recall | F1 | IoU |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for s in sets + ["pooled"]:
            h = r.pooled() if s == "pooled" else r.hist.get(s)
            if h is None or not h.sum():
                continue
            sc = binary_scores(h)
            n = sum(len(cat.pairs[x]) for x in sets) if s == "pooled" else len(cat.pairs[s])
            title = "**pooled**" if s == "pooled" else SETS[s].title
            lines.append(
                f"| {r.name} | {title} | {n} | {h.sum() / 1e6:.2f} | {_f(sc['precision'])} | "
                f"{_f(sc['recall'])} | {_f(sc['f1'])} | {_f(sc['iou'])} |"
            )

    if any(r.identical for r in results):
        isets = [s for s in cat.images if cat.images[s]]
        lines += [
            "",
            "Identical pairs (pre = post): % of valid pixels flagged changed, and images with any "
            "changed pixel / images:",
            "",
        ]
        head = ["method", "all"] + [SETS[s].title for s in isets]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in results:
            cells = [r.fa(r.identical)] + [r.identical.get(s, FalseAlarms()) for s in isets]
            lines.append(
                "| "
                + " | ".join([r.name] + [f"{c.percent:.2f} % ({c.images_with_change}/{c.images})" for c in cells])
                + " |"
            )
    if any(r.pseudo for r in results):
        n = len(cat.pseudo)
        lines += [
            "",
            f"Same-date pseudo-change ({n} images, each perturbed {len(PERTURBATIONS)} ways): "
            "% of valid pixels flagged changed:",
            "",
        ]
        head = ["method"] + list(PERTURBATIONS) + ["all"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in results:
            cells = [_f(r.pseudo[k].percent, 2) if k in r.pseudo else "—" for k in PERTURBATIONS]
            lines.append("| " + " | ".join([r.name] + cells + [_f(r.fa(r.pseudo).percent, 2)]) + " |")
        psets = list(dict.fromkeys(i.set for i in cat.pseudo))
        lines += ["", "The same, all perturbations pooled, per set:", ""]
        head = ["method"] + [SETS[s].title for s in psets]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in results:
            cells = [_f(r.pseudo_sets[s].percent, 2) if s in r.pseudo_sets else "—" for s in psets]
            lines.append("| " + " | ".join([r.name] + cells) + " |")
    return "\n".join(lines)


def summary(cat: Catalogue) -> str:
    """What the run covers, one line per part."""
    pairs = [p for ps in cat.pairs.values() for p in ps]
    by_set = ", ".join(f"{SETS[s].title} {len(v)}" for s, v in cat.pairs.items() if v)
    imgs = ", ".join(f"{SETS[s].title} {len(v)}" for s, v in cat.images.items() if v)
    return (
        f"labelled pairs: {len(pairs)} ({by_set}); identical-pair images: "
        f"{sum(len(v) for v in cat.images.values())} ({imgs}); pseudo-change images: {len(cat.pseudo)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code."""
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Sets: " + ", ".join(SETS),
    )
    ap.add_argument(
        "--shared", type=Path, default=DEFAULT_SHARED, help=f"the realdata folder (default: {DEFAULT_SHARED})"
    )
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        help="model package or ONNX model, PATH or NAME=PATH, repeatable; 'default' = the "
        "shipped default model (used when no --model is given)",
    )
    ap.add_argument(
        "--sets", action="append", default=[], help="comma-separated sets to use (default: all): " + ",".join(SETS)
    )
    ap.add_argument(
        "--set-bands",
        action="append",
        default=[],
        metavar="SET=B1,B2,B3",
        help="bands of a set, e.g. oscd=1,2,3 (default) or cold-springs=7,5,4 (product band numbers)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer images: 4 identical-pair images per set, 10 UCMerced tiles, 1 pseudo-change image per set",
    )
    ap.add_argument(
        "--ucm-sample",
        type=int,
        default=None,
        help="UCMerced tiles for identical pairs (default 30, --quick 10; 0 = all 600)",
    )
    ap.add_argument(
        "--identical-per-set",
        type=int,
        default=None,
        help="at most this many identical-pair images per set (default: all, --quick 4)",
    )
    ap.add_argument(
        "--pc-per-set", type=int, default=None, help="pseudo-change images per set (default 4, --quick 1; 0 = all)"
    )
    ap.add_argument("--pc-crop", type=int, default=512, help="pseudo-change crop side, px (default 512)")
    ap.add_argument(
        "--pairs",
        default="",
        help="comma-separated name parts: only the pairs and images whose name contains one "
        "(e.g. tiszadob: a site held out of a research model's training)",
    )
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-baselines", action="store_true", help="models only")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)

    sets = [s.strip() for v in args.sets for s in v.split(",") if s.strip()] or list(SETS)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        ap.error(f"--sets: unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")
    bands: dict[str, tuple[int, ...]] = {}
    for v in args.set_bands:
        name, _, spec = v.partition("=")
        if name not in SETS or not spec:
            ap.error(f"--set-bands {v}: give SET=B1,B2,B3 with SET one of {', '.join(SETS)}")
        try:
            bands[name] = tuple(int(b) for b in spec.split(","))
        except ValueError:
            ap.error(f"--set-bands {v}: band numbers must be integers")
    if not args.shared.is_dir():
        print(f"realdata benchmark skipped: {args.shared} not found (pass --shared PATH)")
        return 0
    ucm = args.ucm_sample if args.ucm_sample is not None else (10 if args.quick else 30)
    ident = args.identical_per_set if args.identical_per_set is not None else (4 if args.quick else 0)
    pcn = args.pc_per_set if args.pc_per_set is not None else (1 if args.quick else 4)
    cat = discover(args.shared, sets, bands, ucm, ident, pcn, args.seed)
    if args.pairs:
        cat = select(cat, [n.strip() for n in args.pairs.split(",") if n.strip()])
    if not any(cat.pairs.values()) and not any(cat.images.values()):
        print(f"realdata benchmark skipped: none of the sets {', '.join(sets)} found under {args.shared}")
        return 0
    models = parse_models(args.model)

    import torch

    t_all = time.perf_counter()
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, cuda={torch.cuda.is_available()}, Python {platform.python_version()}"
    )
    log(f"realdata benchmark: {summary(cat)}")
    log(f"models: {', '.join(f'{n} = {p}' for n, p in models)}; {machine}")
    with tempfile.TemporaryDirectory(prefix="s2m-realdata-") as tmp:
        tmp = Path(tmp)
        runners = [ModelRunner(n, p, tmp, args.device, args.batch_size) for n, p in models]
        _warm_up(runners, tmp)
        results = run(cat, runners, tmp, baselines=not args.no_baselines, seed=args.seed, pc_crop=args.pc_crop)
    wall = time.perf_counter() - t_all
    cmd = "python benchmarks/realdata.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# Real-imagery benchmark\n\n`{cmd.strip()}` — {summary(cat)}; {machine}; wall {wall / 60:.1f} min.\n")
    print(tables(results, cat))
    if args.json:
        out = {
            "command": cmd.strip(),
            "shared": str(args.shared),
            "quick": args.quick,
            "seed": args.seed,
            "machine": machine,
            "wall_seconds": wall,
            "options": {
                "ucm_sample": ucm,
                "identical_per_set": ident,
                "pc_per_set": pcn,
                "pc_crop": args.pc_crop,
                "set_bands": {s: list(bands.get(s, SETS[s].bands)) for s in sets},
            },
            "sets": {
                s: {
                    "pairs": [p.name for p in cat.pairs.get(s, [])],
                    "identical_images": [i.name for i in cat.images.get(s, [])],
                }
                for s in sets
            },
            "pseudo_change_images": [f"{i.set}/{i.name}" for i in cat.pseudo],
            "perturbations": list(PERTURBATIONS),
            "results": {r.name: r.to_dict() for r in results},
        }
        args.json.write_text(json.dumps(out, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
