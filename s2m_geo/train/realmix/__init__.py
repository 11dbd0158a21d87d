"""Real-imagery change synthesis ("realmix"): labelled change pairs from single-date real tiles.

In the spirit of ChangeStar (single-temporal supervised learning: two unrelated or identical
views paired as "no change") and Changen / copy-paste augmentation (change objects composited
into real scenes), every pair starts from ONE real image ``I``:

- *identical* pairs: ``pre == post`` exactly (the same nuisance on both), label all 0;
- *no-change* pairs: ``pre = pseudo_change(I)``, ``post = pseudo_change(I)`` drawn independently
  (gain, gamma, saturation, blur, haze, noise, sub-pixel misregistration, JPEG), label all 0;
- *distractor* pairs: harmless real-world change (cars moved, seasonal vegetation colour, a
  cloud/tree shadow), label all 0;
- *change* pairs: 1-6 objects composited into ``I`` with feathered edges and shadows, then the
  nuisance is applied to each epoch AFTER compositing, so object pixels get the same blur, noise
  and colour shift as the real background. Objects: new buildings (roofs cut from other real
  tiles or rendered hip/gable/flat roofs in real tones), destroyed buildings (a pasted building,
  or a homogeneous real roof area, turned to rubble), new refugee camps (small tents on cleared
  ground), destroyed fields (crop rows -> scarred soil), destroyed / new greenhouses.

Labels use the class ids of a class table by name (``building_destroyed`` ...); a two-class
table gets every change as id 1. The array functions (:func:`pseudo_change`,
:func:`synthesize_pair`) are pure functions of their inputs and a ``numpy`` generator;
:func:`write_realmix` writes a LEVIR-layout folder (``A/``, ``B/``, ``label/``) atomically and
skips the work when a complete folder with the same manifest exists.

Images are channel-last ``(H, W, 3)`` uint8 arrays throughout.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ... import atomic
from ...atomic import atomic_path
from ...classes import ClassTable, load_class_table
from ...errors import InputError
from ...synthetic import hash01, value_noise

VERSION = 1
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

CHANGE_NAMES = (
    "building_destroyed",
    "building_new",
    "refugee_camp_new",
    "agricultural_land_destroyed",
    "greenhouse_destroyed",
    "greenhouse_new",
)
DEFAULT_IDS: dict[str, int] = {n: i + 1 for i, n in enumerate(CHANGE_NAMES)}  # gaza_change
PAIR_KINDS = ("identical", "nochange", "distractor", "change")
KIND_WEIGHTS = (0.07, 0.17, 0.10, 0.66)  # 34 % of pairs without any change
OBJECT_WEIGHTS = {
    "building_destroyed": 0.27,
    "building_new": 0.27,
    "refugee_camp_new": 0.11,
    "agricultural_land_destroyed": 0.11,
    "greenhouse_destroyed": 0.12,
    "greenhouse_new": 0.12,
}
_BIG = {"refugee_camp_new", "agricultural_land_destroyed", "greenhouse_destroyed", "greenhouse_new"}

Array = np.ndarray


# ---------------------------------------------------------------------------------------------
# Nuisance ("pseudo-change")


def pseudo_change(img: Array, rng: np.random.Generator, strength: float = 1.0) -> Array:
    """A realistic same-date nuisance on one epoch: the same dtype and shape back.

    Sub-pixel misregistration (shift <= 1 px, rotation <= 0.25 deg), gaussian blur
    (sigma <= 1.2), per-band gain/bias and gamma (about +/-12 %), saturation (+/-20 %), haze
    towards a bright grey (alpha <= 0.25, spatially smooth), sensor noise and, for 3-band uint8,
    sometimes JPEG blockiness. ``img`` is ``(H, W)`` or ``(H, W, C)``; integer images use their
    dtype's range, float images 0..255 (or 0..1 when their maximum is <= 1.5).
    ``strength`` scales every magnitude (0 = a plain copy).
    """
    a = np.asarray(img)
    if strength <= 0:
        return a.copy()
    flat = a.ndim == 2
    src = a[..., None] if flat else a
    h, w, c = src.shape
    if np.issubdtype(a.dtype, np.integer):
        top = float(np.iinfo(a.dtype).max)
    else:
        top = 1.0 if (a.size and float(np.nanmax(a)) <= 1.5) else 255.0

    # geometry: a tiny rotation about the centre and a sub-pixel shift
    mag = rng.uniform(0.0, 1.0) * strength
    ang = rng.uniform(0, 2 * np.pi)
    rot = math.radians(rng.uniform(-0.25, 0.25) * strength)
    m = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]], np.float64)
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - m @ centre + np.array([mag * math.sin(ang), mag * math.cos(ang)])
    # radiometry: gamma, then gain and bias per band
    gamma = np.float32(1.0 + rng.uniform(-0.13, 0.15) * strength)
    gain = np.asarray(
        (1.0 + rng.uniform(-0.12, 0.12) * strength) * (1.0 + rng.uniform(-0.05, 0.05, c) * strength), np.float32
    )
    bias = np.asarray((rng.uniform(-0.04, 0.04) + rng.uniform(-0.015, 0.015, c)) * strength, np.float32)
    if a.dtype == np.uint8:  # pointwise part as a table, before the resampling (they commute closely)
        v = np.arange(256, dtype=np.float32) / 255
        lut = (v[None, :] ** gamma * gain[:, None] + bias[:, None]) * 255
        lut = np.clip(np.rint(lut), 0, 255).astype(np.uint8)
        src = np.stack([lut[k][src[..., k]] for k in range(c)], -1)
        x = _affine(src, m, offset).astype(np.float32) / np.float32(top)
    else:
        x = _affine(src, m, offset).astype(np.float32) / np.float32(top)
        x = np.clip(x, 0, 1) ** gamma * gain + bias
    # optics
    if rng.random() < 0.6:
        s = rng.uniform(0.2, 1.2) * strength
        x = ndimage.gaussian_filter(x, (s, s, 0))
    if c >= 3:
        lum = ((x[..., 0] + x[..., 1] + x[..., 2]) / np.float32(3))[..., None]
        x[..., :3] = lum + np.float32(1.0 + rng.uniform(-0.2, 0.2) * strength) * (x[..., :3] - lum)
    if rng.random() < 0.5:  # haze, thicker in places
        alpha = rng.uniform(0.0, 0.25) * strength
        field_ = _noise(rng, h, w, int(rng.integers(48, 200)))
        amount = (alpha * (0.55 + 0.45 * field_))[..., None]
        x = x * (1 - amount) + np.float32(rng.uniform(0.72, 0.9)) * amount
    # sensor noise (uniform, std up to 3.5 DN of 255)
    x = x + np.float32(rng.uniform(0.0, 3.5) * strength / 255.0 * math.sqrt(12)) * (
        rng.random(x.shape, np.float32) - np.float32(0.5)
    )
    x = np.clip(x, 0, 1) * top
    if c == 3 and a.dtype == np.uint8 and rng.random() < 0.25 * min(strength, 1.0):
        x = _jpeg(np.rint(x).astype(np.uint8), int(rng.integers(55, 92))).astype(np.float32)
    if flat:
        x = x[..., 0]
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(np.rint(x), 0, top).astype(a.dtype)
    return x.astype(a.dtype)


def _affine(a: Array, m: Array, offset: Array) -> Array:
    """Bilinear resampling ``out[p] = a[m @ p + offset]`` (p = (row, col)), edges repeated.
    uint8 images with 1 or 3 bands go through PIL (fast), others through scipy."""
    h, w, c = a.shape
    if a.dtype == np.uint8 and c in (1, 3):
        from PIL import Image

        pad = 3
        big = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        off = offset + pad - m @ np.array([pad, pad])
        im = Image.fromarray(big[..., 0] if c == 1 else big)
        coeffs = (m[1, 1], m[1, 0], off[1], m[0, 1], m[0, 0], off[0])  # x = col, y = row
        out = np.asarray(im.transform(im.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR))
        out = out[pad : pad + h, pad : pad + w]
        return out[..., None] if c == 1 else out
    x = a.astype(np.float32)
    return np.stack(
        [ndimage.affine_transform(x[..., k], m, offset=offset, order=1, mode="nearest") for k in range(c)], -1
    )


def _jpeg(rgb: Array, quality: int) -> Array:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------------------------------------
# Small drawing helpers (float32 channel-last canvases, 0..255)


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> Array:
    """Smooth value noise in [0, 1) (synthetic.py's lattice noise, a fresh salt from ``rng``)."""
    return value_noise(0, 0, h, w, max(1, int(round(cell))), int(rng.integers(1, 2**31)))


def _soft(d: Array, soft: float) -> Array:
    """Feathered alpha from a signed distance (negative inside)."""
    return (1.0 / (1.0 + np.exp(np.clip(d / max(soft, 1e-3), -30, 30)))).astype(np.float32)


def _over(dst: Array, colour: Array, alpha: Array) -> None:
    a = alpha[..., None]
    dst *= 1 - a
    dst += colour * a


def _lum(x: Array) -> Array:
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


@dataclass
class _Win:
    """A window of the tile around an object, with object-frame coordinates (u along, v across)."""

    sl: tuple[slice, slice]
    u: Array
    v: Array

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape


def _window(shape: tuple[int, ...], cy: float, cx: float, radius: float, angle: float) -> _Win | None:
    h, w = shape[:2]
    y0, y1 = max(0, int(math.floor(cy - radius))), min(h, int(math.ceil(cy + radius)) + 1)
    x0, x1 = max(0, int(math.floor(cx - radius))), min(w, int(math.ceil(cx + radius)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - np.float32(cy), xx - np.float32(cx)
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return _Win((slice(y0, y1), slice(x0, x1)), dx * c + dy * s, -dx * s + dy * c)


Rect = tuple[float, float, float, float]  # centre u, centre v, half length (u), half width (v)


def _rects_d(u: Array, v: Array, rects: Sequence[Rect]) -> Array:
    """Signed (Chebyshev) distance to a union of axis-aligned rectangles in the (u, v) frame."""
    (cu, cv, a, b), *rest = rects
    d: Array = np.maximum(np.abs(u - cu) - a, np.abs(v - cv) - b)
    for cu, cv, a, b in rest:
        d = np.minimum(d, np.maximum(np.abs(u - cu) - a, np.abs(v - cv) - b))
    return d


def _shadow_d(u: Array, v: Array, rects: Sequence[Rect], su: float, sv: float, length: float) -> Array:
    """Distance to the footprint swept along the shadow direction (su, sv) for ``length`` px."""
    t0, *rest = np.linspace(length / 4, length, 4)
    d = _rects_d(u - su * t0, v - sv * t0, rects)
    for t in rest:
        d = np.minimum(d, _rects_d(u - su * t, v - sv * t, rects))
    return d


@dataclass
class _Ctx:
    """Per-pair state shared by the object renderers."""

    rng: np.random.Generator
    bg: Array  # the real background, float32
    donors: Sequence[Array]
    sun: tuple[float, float]  # unit shadow direction in image (dy, dx)
    shadow_dark: float
    occupied: Array  # bool, already changed (dilated)
    tone: float  # brightness harmonisation of rendered objects to the tile

    def shadow_uv(self, angle: float) -> tuple[float, float]:
        dy, dx = self.sun
        c, s = math.cos(angle), math.sin(angle)
        return dx * c + dy * s, -dx * s + dy * c

    def grain(self, shape: tuple[int, int]) -> Array:
        """Zero-mean, unit-std fine texture cut from a real tile (so pasted surfaces are not flat)."""
        src = self.donors[int(self.rng.integers(len(self.donors)))] if self.donors else self.bg
        h, w = shape
        H, W = src.shape[:2]
        y = int(self.rng.integers(0, max(1, H - h + 1)))
        x = int(self.rng.integers(0, max(1, W - w + 1)))
        lum = _lum(np.asarray(src[y : y + h, x : x + w], np.float32))
        if lum.shape != (h, w):
            lum = np.pad(lum, ((0, h - lum.shape[0]), (0, w - lum.shape[1])), mode="reflect")
        hp = lum - ndimage.gaussian_filter(lum, 1.5)
        return (hp / (hp.std() + 1e-3)).astype(np.float32)

    def place(self, radius: float, open_ground: bool = False, tries: int = 10) -> tuple[float, float] | None:
        """A centre whose square of ``radius`` overlaps little with earlier changes; with
        ``open_ground``, the most open of the candidates (even, not dark, not wooded)."""
        h, w = self.occupied.shape
        best, at = np.inf, None
        for _ in range(tries):
            cy = self.rng.uniform(-0.15 * radius, h - 1 + 0.15 * radius)
            cx = self.rng.uniform(-0.15 * radius, w - 1 + 0.15 * radius)
            r = max(2.0, radius * 0.8)
            sl = (
                slice(max(0, int(cy - r)), max(0, int(cy + r) + 1)),
                slice(max(0, int(cx - r)), max(0, int(cx + r) + 1)),
            )
            box = self.occupied[sl]
            if not box.size or box.mean() >= 0.04:
                continue
            if not open_ground:
                return cy, cx
            score = _clutter(self.bg[sl])
            if score < best:
                best, at = score, (cy, cx)
        return at

    def free(self, win: _Win, d: Array, margin: float = 1.0) -> bool:
        """Whether an object (signed distance ``d``, grown by ``margin``) keeps clear of earlier changes."""
        return not (self.occupied[win.sl] & (d < margin)).any()

    def mark(self, win: _Win, mask: Array) -> None:
        self.occupied[win.sl] |= ndimage.binary_dilation(mask, iterations=3)


def _clutter(p: Array) -> float:
    """How far a patch is from open ground: texture, darkness (shadow, asphalt), greenness."""
    lum = _lum(p)
    green = float(np.mean(np.clip(p[..., 1] - np.maximum(p[..., 0], p[..., 2]), 0, None)))
    return float(lum.std()) + 0.5 * max(0.0, 110 - float(lum.mean())) + 1.5 * green


def _roofish(tile: Array, h: int, w: int, rng: np.random.Generator, n: int = 14, dark: float = 85) -> tuple[int, int]:
    """Top-left of the most roof-like ``h x w`` window of a real tile among ``n`` random ones:
    homogeneous, neither dark (asphalt, shadow) nor green (vegetation)."""
    H, W = tile.shape[:2]
    best, pos = np.inf, (0, 0)
    for _ in range(n):
        y = int(rng.integers(0, max(1, H - h + 1)))
        x = int(rng.integers(0, max(1, W - w + 1)))
        p = np.asarray(tile[y : y + h, x : x + w], np.float32)
        lum = _lum(p)
        green = float(np.mean(p[..., 1] - np.maximum(p[..., 0], p[..., 2])))
        score = float(lum.std()) + 3 * max(0.0, green) + 0.6 * max(0.0, dark - float(lum.mean()))
        if score < best:
            best, pos = score, (y, x)
    return pos


def _footprint(rng: np.random.Generator, lo: float = 4, hi: float = 30) -> list[Rect]:
    """A rectangular or L-shaped building footprint, sides 8-60 px (half sizes ``lo..hi``)."""
    a = rng.uniform(lo, hi)
    b = max(lo, a * rng.uniform(0.35, 1.0))
    rects: list[Rect] = [(0.0, 0.0, a, b)]
    if rng.random() < 0.3 and a > 7:  # L-shape: a wing at one end
        a2, b2 = a * rng.uniform(0.25, 0.5), b * rng.uniform(0.5, 1.0)
        su, sv = rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])
        rects.append((su * (a - a2), sv * (b + b2 - 0.5), a2, b2))
    return rects


def _radius(rects: Sequence[Rect], extra: float = 0.0) -> float:
    return max(math.hypot(abs(cu) + a, abs(cv) + b) for cu, cv, a, b in rects) + extra


_ROOF_TONES = np.array(
    [
        [168, 102, 80],
        [150, 120, 104],
        [122, 110, 104],
        [172, 170, 166],
        [205, 203, 196],
        [96, 92, 92],
        [186, 160, 130],
        [140, 140, 142],
    ],
    np.float32,
)


def _roof(ctx: _Ctx, win: _Win, rects: Sequence[Rect], d: Array, su: float, sv: float) -> Array:
    """Roof colours over a window: a real roof patch from a donor tile, or a rendered
    hip/gable/flat roof in a real tone, with eaves, shading and real grain. ``(su, sv)``: the
    shadow direction in the object frame (faces turned that way are darker)."""
    rng = ctx.rng
    h, w = win.shape
    if ctx.donors and rng.random() < 0.55:
        donor = ctx.donors[int(rng.integers(len(ctx.donors)))]
        y, x = _roofish(donor, h, w, rng)
        patch = np.asarray(donor[y : y + h, x : x + w], np.float32)
        if patch.shape[:2] != (h, w):
            patch = np.pad(patch, ((0, h - patch.shape[0]), (0, w - patch.shape[1]), (0, 0)), mode="reflect")
        colour = patch * np.float32(rng.uniform(0.92, 1.08))
        colour = colour * np.where(d > -1.2, 0.86, 1.0)[..., None].astype(np.float32)
        return colour
    if ctx.donors and rng.random() < 0.5:  # a tone taken from a real roof
        donor = ctx.donors[int(rng.integers(len(ctx.donors)))]
        y, x = _roofish(donor, 8, 8, rng)
        base = np.median(np.asarray(donor[y : y + 8, x : x + 8], np.float32).reshape(-1, 3), 0)
    else:
        base = _ROOF_TONES[int(rng.integers(len(_ROOF_TONES)))] * np.float32(ctx.tone)
    base = base * np.float32(rng.uniform(0.88, 1.1)) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    style = rng.choice(["hip", "gable", "flat"], p=[0.35, 0.35, 0.3])
    # each pixel belongs to the rectangle it is deepest in
    depth = np.stack([np.maximum(np.abs(win.u - cu) - a, np.abs(win.v - cv) - b) for cu, cv, a, b in rects])
    owner = depth.argmin(0)
    shade = np.ones((h, w), np.float32)
    k = rng.uniform(0.08, 0.2)
    for i, (cu, cv, a, b) in enumerate(rects):
        sel = owner == i
        du, dv = win.u[sel] - cu, win.v[sel] - cv
        if style == "flat":
            continue
        if style == "gable" or a - b < 1:
            # ridge along the long axis: faces point across it
            if a >= b:
                nu, nv = np.zeros_like(du), np.sign(dv)
            else:
                nu, nv = np.sign(du), np.zeros_like(dv)
        else:  # hip: the face of the nearest edge
            along = (a - np.abs(du)) < (b - np.abs(dv))
            nu = np.where(along, np.sign(du), 0.0)
            nv = np.where(along, 0.0, np.sign(dv))
        shade[sel] = 1.0 - k * (nu * su + nv * sv)
    colour = base[None, None, :] * shade[..., None]
    if style == "flat":
        colour = colour * np.where(d > -1.6, rng.uniform(0.8, 1.1), 1.0)[..., None].astype(np.float32)
        for _ in range(int(rng.integers(0, 4))):  # rooftop units
            cu, cv, a, b = rects[0]
            uu, vv = rng.uniform(-a + 3, a - 3), rng.uniform(-b + 3, b - 3)
            s = rng.uniform(1.2, 2.8)
            box = (np.abs(win.u - uu) < s) & (np.abs(win.v - vv) < s)
            colour[box] = colour[box] * rng.uniform(0.55, 1.25)
    else:
        colour = colour * np.where(d > -1.0, 0.84, 1.0)[..., None].astype(np.float32)
    colour = colour * (1 + 0.05 * ctx.grain((h, w)))[..., None]
    colour = colour * (0.94 + 0.12 * _noise(rng, h, w, 6))[..., None]
    return colour.astype(np.float32)


def _building(
    ctx: _Ctx, canvas: Array, rects: Sequence[Rect], cy: float, cx: float, angle: float, margin: float = 1.0
) -> tuple[_Win, Array, Array] | None:
    """Paste a building (roof + soft shadow) into ``canvas``; its window, footprint and roof
    colours. Nothing is drawn (None) where it would touch an earlier change (+ ``margin``)."""
    rng = ctx.rng
    height = rng.uniform(2.0, 7.0)
    win = _window(canvas.shape, cy, cx, _radius(rects, height + 3), angle)
    if win is None:
        return None
    su, sv = ctx.shadow_uv(angle)
    d = _rects_d(win.u, win.v, rects)
    if not ctx.free(win, d, margin):
        return None
    alpha = _soft(d, rng.uniform(0.35, 0.65))
    roof = _roof(ctx, win, rects, d, su, sv)
    inside = d < 0
    if inside.any():  # keep a roof distinguishable from the ground it lands on
        lum_roof = float(_lum(roof[inside]).mean())
        gap = lum_roof - float(_lum(canvas[win.sl][inside]).mean())
        if abs(gap) < 30:
            brighter = lum_roof < 70 or (gap >= 0 and lum_roof < 180)
            roof = roof * np.float32(1.35 if brighter else 0.68)
    ds = _shadow_d(win.u, win.v, rects, su, sv, height)
    shadow = ctx.shadow_dark * _soft(ds, 0.8) * (1 - alpha)
    region = canvas[win.sl]
    region *= (1 - shadow)[..., None]
    _over(region, roof, alpha)
    return win, d < 0, roof


def _rubble(ctx: _Ctx, win: _Win, d: Array, under: Array, spill: float) -> tuple[Array, Array]:
    """Rubble colours and alpha over a footprint distance ``d`` (+ ragged spill): chunky
    grey/brown debris with lit and shadowed facets and dark voids, tinted by ``under``."""
    rng = ctx.rng
    h, w = win.shape
    rag = _noise(rng, h, w, 5) + 0.4 * _noise(rng, h, w, 2)
    dr = d - spill * (0.25 + 0.75 * rag)
    alpha = _soft(dr, 0.6)
    # debris heap: slabs of varying brightness, lit and shadowed facets, dark gaps
    hgt = 0.6 * _noise(rng, h, w, rng.uniform(4, 7)) + 0.4 * _noise(rng, h, w, 2)
    sy, sx = ctx.sun
    lit = 1.0 + 1.8 * (ndimage.shift(hgt, (1.5 * sy, 1.5 * sx), order=1, mode="nearest") - hgt)
    slabs = np.floor(_noise(rng, h, w, rng.uniform(2.5, 4.5)) * 4) / 3  # 0, 1/3, 2/3, 1
    tex = (0.7 + 0.4 * slabs + 0.12 * (rng.random((h, w), np.float32) - 0.5)) * lit
    tex = np.where(_noise(rng, h, w, 3) < rng.uniform(0.1, 0.22), tex * 0.42, tex)  # voids
    dust = np.array([[158, 152, 140], [170, 164, 152], [140, 134, 124], [128, 124, 118], [168, 154, 132]], np.float32)[
        int(rng.integers(5))
    ] * np.float32(ctx.tone)
    inside = d < 0
    mean_under = under[inside].mean(0) if inside.any() else dust
    mix = (rng.uniform(0.1, 0.5) * _noise(rng, h, w, 4))[..., None]  # some pieces keep their colour
    base = dust * (1 - mix) + mean_under * mix
    colour = base * tex[..., None] * (1 + 0.03 * (rng.random((h, w, 3), np.float32) - 0.5))
    if rng.random() < 0.5:  # standing remnants (walls, slabs) of what was there
        keep = inside & (_noise(rng, h, w, 6) > rng.uniform(0.72, 0.85))
        colour[keep] = under[keep] * 0.82
    return colour.astype(np.float32), alpha


# ---------------------------------------------------------------------------------------------
# Change objects. Each draws into pre/post/label in place and returns True when it placed one.


def _obj_building_new(ctx: _Ctx, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rects = _footprint(ctx.rng)
    at = ctx.place(_radius(rects), open_ground=ctx.rng.random() < 0.6)
    if at is None:
        return False
    got = _building(ctx, post, rects, *at, ctx.rng.uniform(0, np.pi))
    if got is None:
        return False
    win, mask, _ = got
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


def _obj_building_destroyed(ctx: _Ctx, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rng = ctx.rng
    spill = rng.uniform(1.5, 7.0)
    if rng.random() < 0.35:  # a homogeneous, roof-like area of the real tile itself
        rects = _footprint(rng, 5, 22)[:1]
        cu, cv, a, b = rects[0]
        y, x = _roofish(ctx.bg, int(2 * b), int(2 * a), rng, n=20, dark=125)
        cy, cx = y + b, x + a
        r = ctx.occupied[max(0, y) : y + int(2 * b), max(0, x) : x + int(2 * a)]
        if r.size and r.mean() > 0.04:
            return False
        win = _window(pre.shape, cy, cx, _radius(rects, spill + 3), 0.0)
        if win is None:
            return False
        d = _rects_d(win.u, win.v, rects)
        if not ctx.free(win, d, spill + 1):
            return False
        under = pre[win.sl].copy()
    else:  # a pasted building in pre
        rects = _footprint(rng)
        at = ctx.place(_radius(rects, spill))
        if at is None:
            return False
        got = _building(ctx, pre, rects, *at, rng.uniform(0, np.pi), margin=spill + 1)
        if got is None:
            return False
        win, _, _ = got  # post keeps the ground: building and shadow are gone, rubble on top
        d = _rects_d(win.u, win.v, rects)
        under = pre[win.sl].copy()
    colour, alpha = _rubble(ctx, win, d, under, spill)
    _over(post[win.sl], colour, alpha)
    mask = (alpha > 0.5) | (d < 0)
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


_TENTS = np.array(
    [
        [236, 236, 232],
        [176, 198, 222],
        [210, 210, 200],
        [150, 170, 190],
        [226, 218, 200],
        [240, 240, 240],
        [190, 190, 180],
    ],
    np.float32,
)
_SOIL = np.array([[196, 180, 148], [178, 160, 130], [205, 192, 165], [160, 146, 122]], np.float32)


class _Patch(NamedTuple):
    """A free, rough-edged rectangle of open ground: half-sides, angle, window, distance."""

    A: float
    B: float
    angle: float
    win: _Win
    d: Array


def _open_patch(
    ctx: _Ctx,
    shape: tuple[int, ...],
    a: tuple[float, float],
    b: tuple[float, float],
    pad: float,
    rough: float,
    cell: float,
) -> _Patch | None:
    """Place a rectangle of half-sides drawn from ``a`` x ``b`` on open ground, its outline
    roughened by ``rough`` px of value noise; None when there is no free room for it."""
    rng = ctx.rng
    A, B = rng.uniform(*a), rng.uniform(*b)
    at = ctx.place(math.hypot(A, B) * 0.8, open_ground=True)
    if at is None:
        return None
    angle = rng.uniform(0, np.pi)
    win = _window(shape, *at, math.hypot(A, B) + pad, angle)
    if win is None:
        return None
    d = _rects_d(win.u, win.v, [(0, 0, A, B)]) + rough * (_noise(rng, *win.shape, cell) - 0.5)
    return _Patch(A, B, angle, win, d) if ctx.free(win, d) else None


def _obj_camp(ctx: _Ctx, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rng = ctx.rng
    patch = _open_patch(ctx, post.shape, (18, 60), (14, 45), pad=4, rough=6, cell=10)
    if patch is None:
        return False
    A, B, angle, win, d = patch
    h, w = win.shape
    u, v = win.u, win.v
    region = _soft(d, 1.0)
    # cleared / trampled ground
    soil = _SOIL[int(rng.integers(len(_SOIL)))] * np.float32(ctx.tone)
    ground = soil * (0.9 + 0.15 * _noise(rng, h, w, 8))[..., None] * (1 + 0.04 * ctx.grain((h, w)))[..., None]
    _over(post[win.sl], ground.astype(np.float32), region * np.float32(rng.uniform(0.45, 0.85)))
    # tents on a jittered grid
    tl, tw = rng.uniform(6, 13), rng.uniform(5, 10)
    pu, pv = tl + rng.uniform(1.5, 4), tw + rng.uniform(1.5, 4)
    salt = int(rng.integers(1, 2**31))
    su, sv = ctx.shadow_uv(angle)
    occupancy = rng.uniform(0.75, 0.95)

    def tents(uu: Array, vv: Array) -> tuple[Array, Array, Array]:
        iv = np.floor((vv + B) / pv).astype(np.int64)
        off = hash01(iv + 1000, np.full_like(iv, 7), salt) * pu
        iu = np.floor((uu + A + off) / pu).astype(np.int64)
        fu = uu + A + off - iu * pu - tl / 2
        fv = vv + B - iv * pv - tw / 2
        centre_u = iu * pu + tl / 2 - A - off
        centre_v = iv * pv + tw / 2 - B
        keep = (hash01(iu + 1000, iv + 1000, salt + 1) < occupancy) & (
            np.maximum(np.abs(centre_u) - A + tl / 2, np.abs(centre_v) - B + tw / 2) < -1
        )
        dt = np.maximum(np.abs(fu) - tl / 2, np.abs(fv) - tw / 2)
        return np.where(keep, dt, 99.0), fv, hash01(iu + 1000, iv + 1000, salt + 2)

    dt, fv, pick = tents(u, v)
    ds, _, _ = tents(u - su * 1.6, v - sv * 1.6)
    a_t = _soft(dt, 0.45)
    shadow = ctx.shadow_dark * 0.8 * _soft(ds, 0.6) * (1 - a_t)
    post[win.sl] *= (1 - shadow)[..., None]
    colour = _TENTS[np.minimum((pick * len(_TENTS)).astype(np.int64), len(_TENTS) - 1)] * np.float32(ctx.tone)
    colour = colour * np.where(fv < 0, 1.0, rng.uniform(0.8, 0.9))[..., None]
    colour = colour * (1 + 0.03 * ctx.grain((h, w)))[..., None]
    _over(post[win.sl], colour.astype(np.float32), a_t)
    mask = (region > 0.5) & (d < 0)
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


_CROPS = np.array(
    [[78, 104, 58], [96, 122, 66], [110, 128, 74], [124, 120, 80], [70, 92, 56], [132, 138, 90]], np.float32
)


def _obj_field(ctx: _Ctx, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rng = ctx.rng
    patch = _open_patch(ctx, pre.shape, (25, 80), (20, 60), pad=3, rough=3, cell=16)
    if patch is None:
        return False
    A, B, _, win, d = patch
    h, w = win.shape
    u, v = win.u, win.v
    alpha = _soft(d, rng.uniform(0.6, 1.2))
    # pre: crop rows
    period = rng.uniform(3, 7)
    depth = rng.uniform(0.1, 0.25)
    rows = 1 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * v / period))
    crop = _CROPS[int(rng.integers(len(_CROPS)))] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    field_ = crop * (rows * (0.88 + 0.24 * _noise(rng, h, w, 24)) * (1 + 0.05 * ctx.grain((h, w))))[..., None]
    _over(pre[win.sl], field_.astype(np.float32), alpha)
    # post: scorched, cratered, tracked soil
    soil = (
        np.array([148, 128, 102], np.float32)
        * np.float32(rng.uniform(0.85, 1.12) * ctx.tone)
        * rng.uniform(0.96, 1.04, 3).astype(np.float32)
    )
    f = (0.75 + 0.35 * _noise(rng, h, w, 9)) * (1 + 0.2 * (rng.random((h, w), np.float32) - 0.5))
    for _ in range(int(rng.integers(2, 14))):  # craters: dark bowl, bright ejecta rim
        cu, cv, rad = rng.uniform(-A, A), rng.uniform(-B, B), rng.uniform(1.5, 7.0)
        dist = np.hypot(u - cu, v - cv) * (1 + 0.15 * (_noise(rng, h, w, 3) - 0.5))
        f = f * (1 - 0.55 * np.exp(-((dist / rad) ** 2)) + 0.22 * np.exp(-(((dist - 1.4 * rad) / (0.45 * rad)) ** 2)))
    for _ in range(int(rng.integers(1, 5))):  # vehicle tracks
        slope, v0, tw = rng.uniform(-1, 1), rng.uniform(-B, B), rng.uniform(0.7, 1.6)
        f = f * (1 - 0.35 * np.exp(-(((v - (v0 + slope * u)) / tw) ** 2)))
    if rng.random() < 0.5:  # burnt patches
        burn = np.clip((rng.uniform(0.2, 0.4) - _noise(rng, h, w, 12)) / 0.08, 0, 1)
        f = f * (1 - 0.45 * burn)
    if rng.random() < 0.4:  # faint stubble rows left
        f = f * (1 - 0.08 * (0.5 + 0.5 * np.cos(2 * np.pi * v / period)))
    scarred = soil * (f * (1 + 0.05 * ctx.grain((h, w))))[..., None]
    _over(post[win.sl], scarred.astype(np.float32), alpha)
    mask = d < 0
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


def _greenhouse_geometry(rng: np.random.Generator) -> tuple[list[Rect], float]:
    n = int(rng.integers(1, 6))
    width = rng.uniform(9, 20)
    gap = rng.uniform(2, 6)
    half = rng.uniform(20, 75)
    span = n * width + (n - 1) * gap
    rects = [
        (0.0, -span / 2 + width / 2 + k * (width + gap), half * rng.uniform(0.85, 1.0), width / 2) for k in range(n)
    ]
    return rects, width


def _greenhouse_colour(ctx: _Ctx, win: _Win, rects: Sequence[Rect], width: float) -> Array:
    """Ribbed, arched white plastic covers."""
    rng = ctx.rng
    h, w = win.shape
    rib = rng.uniform(4, 7)
    cover = (
        np.array([232, 235, 236], np.float32)
        * np.float32(rng.uniform(0.88, 1.04))
        * rng.uniform(0.985, 1.015, 3).astype(np.float32)
    )
    # position across the nearest strip, for the arch shading
    cvs = np.array([r[1] for r in rects], np.float32)
    nearest = cvs[np.abs(win.v[..., None] - cvs).argmin(-1)]
    fv = (win.v - nearest) / (width / 2)
    arch = 0.84 + 0.16 * np.cos(np.clip(fv, -1, 1) * np.pi / 2)
    ribs = np.where(np.mod(win.u, rib) < 1.0, 0.8, 1.0)
    tex = arch * ribs * (0.96 + 0.06 * _noise(rng, h, w, 10)) * (1 + 0.02 * ctx.grain((h, w)))
    return (cover * tex[..., None]).astype(np.float32)


def _obj_greenhouse(ctx: _Ctx, pre: Array, post: Array, label: Array, cid: int, destroyed: bool) -> bool:
    rng = ctx.rng
    rects, width = _greenhouse_geometry(rng)
    radius = _radius(rects, 3)
    at = ctx.place(radius * 0.8, open_ground=rng.random() < 0.7)
    if at is None:
        return False
    angle = rng.uniform(0, np.pi)
    win = _window(pre.shape, *at, radius, angle)
    if win is None:
        return False
    h, w = win.shape
    d = _rects_d(win.u, win.v, rects)
    if not ctx.free(win, d):
        return False
    alpha = _soft(d, rng.uniform(0.35, 0.6))
    su, sv = ctx.shadow_uv(angle)
    ds = _shadow_d(win.u, win.v, rects, su, sv, rng.uniform(1.0, 3.0))
    shadow = ctx.shadow_dark * 0.8 * _soft(ds, 0.7) * (1 - alpha)
    intact = _greenhouse_colour(ctx, win, rects, width)
    if destroyed:
        before = post[win.sl].copy()
        pre[win.sl] *= (1 - shadow)[..., None]
        _over(pre[win.sl], intact, alpha)
        # post: torn covers, bare frames, holes onto dirt
        rib = rng.uniform(4, 7)
        holes = _noise(rng, h, w, rng.uniform(3, 7)) < rng.uniform(0.4, 0.65)
        frame = np.mod(win.u, rib) < 1.0
        dirt = before * 0.55 + np.array([110, 100, 85], np.float32) * 0.45
        remnant = np.array([205, 200, 190], np.float32) * (0.85 + 0.15 * rng.random((h, w), np.float32))[..., None]
        torn = np.where(holes[..., None], dirt, remnant)
        torn = np.where(frame[..., None], np.float32(rng.uniform(0.45, 0.7)) * torn, torn)
        _over(post[win.sl], torn.astype(np.float32), alpha)
    else:
        post[win.sl] *= (1 - shadow)[..., None]
        _over(post[win.sl], intact, alpha)
    mask = d < 0
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


_OBJECTS: dict[str, Callable[..., bool]] = {
    "building_destroyed": _obj_building_destroyed,
    "building_new": _obj_building_new,
    "refugee_camp_new": _obj_camp,
    "agricultural_land_destroyed": _obj_field,
    "greenhouse_destroyed": partial(_obj_greenhouse, destroyed=True),
    "greenhouse_new": partial(_obj_greenhouse, destroyed=False),
}


# ---------------------------------------------------------------------------------------------
# Distractors: harmless real change, label 0


_CARS = np.array(
    [[236, 236, 236], [28, 28, 30], [150, 150, 156], [165, 32, 30], [40, 58, 120], [205, 200, 188], [70, 72, 76]],
    np.float32,
)


def _car(ctx: _Ctx, canvas: Array, cy: float, cx: float, angle: float, colour: Array) -> None:
    rng = ctx.rng
    a, b = rng.uniform(6, 8), rng.uniform(2.4, 3.2)
    win = _window(canvas.shape, cy, cx, a + 4, angle)
    if win is None:
        return
    d = _rects_d(win.u, win.v, [(0, 0, a, b)])
    su, sv = ctx.shadow_uv(angle)
    shadow = ctx.shadow_dark * 0.7 * _soft(_shadow_d(win.u, win.v, [(0, 0, a, b)], su, sv, 1.5), 0.6)
    alpha = _soft(d, 0.45)
    body = np.broadcast_to(colour, win.shape + (3,)).copy()
    glass = (np.abs(win.u - a * 0.35) < a * 0.18) | (np.abs(win.u + a * 0.45) < a * 0.1)
    body[glass] = body[glass] * 0.35 + 12
    region = canvas[win.sl]
    region *= (1 - shadow * (1 - alpha))[..., None]
    _over(region, body, alpha)


def _distractors(ctx: _Ctx, pre: Array, post: Array) -> None:
    rng = ctx.rng
    h, w = pre.shape[:2]
    if rng.random() < 0.75:  # cars parked, left or moved
        for _ in range(int(rng.integers(2, 11))):
            colour = _CARS[int(rng.integers(len(_CARS)))] * np.float32(rng.uniform(0.9, 1.08))
            cy, cx, angle = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, np.pi)
            event = rng.random()
            if event < 0.35:
                _car(ctx, pre, cy, cx, angle, colour)
            elif event < 0.7:
                _car(ctx, post, cy, cx, angle, colour)
            else:
                _car(ctx, pre, cy, cx, angle, colour)
                step = rng.uniform(8, 40) * rng.choice([-1, 1])
                _car(ctx, post, cy + step * math.sin(angle), cx + step * math.cos(angle), angle, colour)
    if rng.random() < 0.5:  # seasonal vegetation colour in one epoch
        target = post if rng.random() < 0.5 else pre
        g = target[..., 1] - np.maximum(target[..., 0], target[..., 2])
        veg = ndimage.gaussian_filter(np.clip(g / 20.0, 0, 1), 1.0)[..., None]
        s = rng.uniform(0.15, 0.5)
        dry = target * np.array([1.18, 1.02, 0.82], np.float32) + np.array([10, 4, 0], np.float32)
        target += (dry - target) * veg * s
    if rng.random() < 0.35:  # a soft cloud / tree shadow in one epoch
        target = post if rng.random() < 0.5 else pre
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(15, 80), rng.uniform(15, 80)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        amount = rng.uniform(0.1, 0.25) * _soft(d - 1, 0.3)
        target *= (1 - amount)[..., None]


# ---------------------------------------------------------------------------------------------
# A pair


@dataclass
class RealPair:
    """One synthesised pair: ``pre``/``post`` (H, W, 3) uint8, ``label`` (H, W) uint8 class ids."""

    pre: Array
    post: Array
    label: Array
    kind: str
    objects: list[str] = field(default_factory=list)


def _to8(x: Array) -> Array:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def synthesize_pair(
    background: Array,
    rng: np.random.Generator,
    donors: Sequence[Array] = (),
    ids: Mapping[str, int] | None = None,
    kind: str | None = None,
    nuisance: bool = True,
    max_objects: int = 6,
) -> RealPair:
    """Make one labelled pair from a real ``(H, W, 3)`` uint8 tile.

    ``donors``: other real tiles that roofs may be cut from (and grain borrowed from);
    ``ids``: class id per change name (default gaza_change; names left out are not drawn);
    ``kind``: one of :data:`PAIR_KINDS` (default: drawn with :data:`KIND_WEIGHTS`);
    ``nuisance=False`` skips :func:`pseudo_change` (tests: the clean composites).
    """
    bg8 = np.asarray(background)
    if bg8.ndim != 3 or bg8.shape[2] < 3:
        raise ValueError(f"background must be (H, W, 3), got {bg8.shape}")
    bg = bg8[..., :3].astype(np.float32)
    ids = dict(DEFAULT_IDS if ids is None else ids)
    names = [n for n in CHANGE_NAMES if n in ids]
    if kind is None:
        kind = PAIR_KINDS[int(rng.choice(len(PAIR_KINDS), p=KIND_WEIGHTS))]
    if kind not in PAIR_KINDS:
        raise ValueError(f"unknown pair kind {kind!r}; one of {PAIR_KINDS}")
    if kind == "change" and not names:
        kind = "nochange"
    h, w = bg.shape[:2]
    label = np.zeros((h, w), np.uint8)
    finish = (lambda a: pseudo_change(a, rng)) if nuisance else (lambda a: a)
    if kind == "identical":
        pre = finish(_to8(bg))
        return RealPair(pre, pre.copy(), label, kind)
    theta = rng.uniform(0, 2 * np.pi)
    ctx = _Ctx(
        rng=rng,
        bg=bg,
        donors=[np.asarray(d)[..., :3] for d in donors],
        sun=(math.sin(theta), math.cos(theta)),
        shadow_dark=float(rng.uniform(0.35, 0.6)),
        occupied=np.zeros((h, w), bool),
        tone=float(np.clip((_lum(bg).mean() / 125.0) ** 0.3, 0.85, 1.12)),
    )
    pre, post = bg.copy(), bg.copy()
    objects: list[str] = []
    if kind == "distractor" or (kind == "change" and rng.random() < 0.35):
        _distractors(ctx, pre, post)
    if kind == "change":
        weights = np.array([OBJECT_WEIGHTS[n] for n in names])
        n_obj = 1 + int(rng.choice(max_objects, p=_count_weights(max_objects)))
        big = 0
        for _ in range(n_obj):
            name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            if name in _BIG:
                if big >= 2:
                    continue
                big += 1
            for _ in range(3):  # a few tries: an object that would touch an earlier one is redrawn
                if _OBJECTS[name](ctx, pre, post, label, int(ids[name])):
                    objects.append(name)
                    break
        if not objects:  # nothing fitted: it is a no-change pair
            kind = "nochange"
    return RealPair(finish(_to8(pre)), finish(_to8(post)), label, kind, objects)


def _count_weights(n: int) -> Array:
    p = np.array([1.0 / (k + 1.5) for k in range(n)])
    return p / p.sum()


def class_ids(table: ClassTable) -> dict[str, int]:
    """Class id per change name for a table: by name, or every change as 1 in a two-class table."""
    if table.num_classes == 2:
        return {n: 1 for n in CHANGE_NAMES}
    by_name = {c.name: c.id for c in table.classes}
    ids = {n: by_name[n] for n in CHANGE_NAMES if n in by_name}
    if not ids:
        raise InputError(
            f"class table '{table.name}' has none of the realmix classes {list(CHANGE_NAMES)}; "
            f"use gaza_change (or a two-class table)"
        )
    return ids


# ---------------------------------------------------------------------------------------------
# Real images on disk


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


# ---------------------------------------------------------------------------------------------
# Writing a LEVIR-layout folder


MANIFEST = "realmix.json"


def _write_png(path: Path, arr: Array, palette: list[int] | None = None) -> None:
    """Write a PNG under a temporary name in the same folder, then rename it into place."""
    from PIL import Image

    im = Image.fromarray(arr)
    if palette is not None:  # class ids as palette indices: readers see ids, viewers colours
        im = im.convert("P")
        im.putpalette(palette)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG", compress_level=3)


def _palette(table: ClassTable) -> list[int]:
    pal = [0] * 768
    for c in table.classes:
        if 0 <= c.id < 256:
            pal[3 * c.id : 3 * c.id + 3] = list(c.rgb)
    return pal


def _images_digest(found: Sequence[tuple[Path, Path]]) -> str:
    h = hashlib.sha256()
    for root, p in found:
        h.update(f"{p.relative_to(root).as_posix()}|{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def pair_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of pair ``index`` of a set: independent of the order pairs are made in."""
    return np.random.default_rng([seed & 0xFFFFFFFF, 0x5EA1, index])


def make_pair(pool: ImagePool, index: int, seed: int, donors: Sequence[int], ids: Mapping[str, int]) -> RealPair:
    """Pair ``index`` of a realmix set: a background crop, two donor crops, the synthesis."""
    rng = pair_rng(seed, index)
    bg = pool.crop(int(rng.integers(len(pool))), rng)
    picks = [donors[int(rng.integers(len(donors)))] for _ in range(2)] if donors else []
    return synthesize_pair(bg, rng, [pool.crop(i, rng) for i in picks], ids)


def write_realmix(
    out_dir: str | Path,
    images: str | Path | Sequence[str | Path],
    count: int,
    seed: int = 0,
    size: int = 256,
    table: ClassTable | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``count`` pairs as ``out_dir/A/*.png``, ``B/*.png``, ``label/*.png`` (LEVIR layout;
    labels are paletted PNGs whose values are class ids) and a manifest ``realmix.json``.

    Each file is written under a temporary name and renamed; the manifest goes last, so a
    folder is complete exactly when its manifest matches. A complete folder made with the same
    version, seed, count, size, classes and image list is left as it is. Returns ``out_dir``.
    """
    if count < 1:
        raise InputError(f"realmix: count must be >= 1, got {count}")
    if size < 32:
        raise InputError(f"realmix: size must be >= 32, got {size}")
    table = table or load_class_table()
    ids = class_ids(table)
    found = find_images(images)
    out = Path(out_dir)
    names = [f"realmix{seed}_{i:05d}" for i in range(count)]
    key = {
        "version": VERSION,
        "seed": int(seed),
        "count": int(count),
        "size": int(size),
        "classes": table.name,
        "ids": ids,
        "images": _images_digest(found),
    }
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("key") == key and all((out / d / f"{n}.png").is_file() for d in ("A", "B", "label") for n in names):
            return out
    dirs = {d: out / d for d in ("A", "B", "label")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    pool = ImagePool([p for _, p in found], size)
    donors = [i for i, p in enumerate(pool.files) if any(k in p.as_posix().lower() for k in DONOR_PARTS)]
    donors = donors or list(range(len(pool)))
    palette = _palette(table)
    pixels = np.zeros(256, np.int64)
    kinds: dict[str, int] = {}
    objects: dict[str, int] = {}
    for i, name in enumerate(names):
        pair = make_pair(pool, i, seed, donors, ids)
        _write_png(dirs["A"] / f"{name}.png", pair.pre)
        _write_png(dirs["B"] / f"{name}.png", pair.post)
        _write_png(dirs["label"] / f"{name}.png", pair.label, palette)
        pixels += np.bincount(pair.label.ravel(), minlength=256)
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
        for o in pair.objects:
            objects[o] = objects.get(o, 0) + 1
        if progress:
            progress(i + 1, count)
    keep = set(names)
    for d in dirs.values():  # pairs of an earlier, larger set
        for p in d.glob("realmix*.png"):
            if p.stem not in keep:
                p.unlink()
    total = int(pixels.sum())
    stats = {
        "kinds": kinds,
        "objects": objects,
        "class_pixel_fraction": {str(k): round(int(pixels[k]) / total, 6) for k in range(256) if pixels[k]},
    }
    body = json.dumps(
        {"key": key, "images": [str(r) for r in dict.fromkeys(r for r, _ in found)], "stats": stats}, indent=1
    )
    atomic.write_text(manifest, body)
    return out
