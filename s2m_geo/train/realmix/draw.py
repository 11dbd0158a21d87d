"""Drawing helpers for the composited objects (float32 channel-last canvases, 0..255):
smooth noise, feathered alphas, object windows and signed distances, the per-pair drawing
context, building footprints, roofs, buildings and rubble."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...synthetic import value_noise

Array = np.ndarray


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> Array:
    """Smooth value noise in [0, 1) (synthetic.py's lattice noise, a fresh salt from ``rng``)."""
    return value_noise(0, 0, h, w, max(1, int(round(cell))), int(rng.integers(1, 2**31)))


def feather(d: Array, soft: float) -> Array:
    """Feathered alpha from a signed distance (negative inside)."""
    return (1.0 / (1.0 + np.exp(np.clip(d / max(soft, 1e-3), -30, 30)))).astype(np.float32)


def paint_over(dst: Array, colour: Array, alpha: Array) -> None:
    """Alpha-blend ``colour`` over ``dst`` in place."""
    a = alpha[..., None]
    dst *= 1 - a
    dst += colour * a


def luminance(x: Array) -> Array:
    """Luma (Rec. 601 weights) of a channel-last RGB array."""
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


@dataclass
class ObjectWindow:
    """A window of the tile around an object, with object-frame coordinates (u along, v across)."""

    sl: tuple[slice, slice]
    u: Array
    v: Array

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape


def object_window(shape: tuple[int, ...], cy: float, cx: float, radius: float, angle: float) -> ObjectWindow | None:
    h, w = shape[:2]
    y0, y1 = max(0, int(math.floor(cy - radius))), min(h, int(math.ceil(cy + radius)) + 1)
    x0, x1 = max(0, int(math.floor(cx - radius))), min(w, int(math.ceil(cx + radius)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - np.float32(cy), xx - np.float32(cx)
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return ObjectWindow((slice(y0, y1), slice(x0, x1)), dx * c + dy * s, -dx * s + dy * c)


Rect = tuple[float, float, float, float]  # centre u, centre v, half length (u), half width (v)


def rects_distance(u: Array, v: Array, rects: Sequence[Rect]) -> Array:
    """Signed (Chebyshev) distance to a union of axis-aligned rectangles in the (u, v) frame."""
    (cu, cv, a, b), *rest = rects
    d: Array = np.maximum(np.abs(u - cu) - a, np.abs(v - cv) - b)
    for cu, cv, a, b in rest:
        d = np.minimum(d, np.maximum(np.abs(u - cu) - a, np.abs(v - cv) - b))
    return d


def shadow_distance(u: Array, v: Array, rects: Sequence[Rect], su: float, sv: float, length: float) -> Array:
    """Distance to the footprint swept along the shadow direction (su, sv) for ``length`` px."""
    t0, *rest = np.linspace(length / 4, length, 4)
    d = rects_distance(u - su * t0, v - sv * t0, rects)
    for t in rest:
        d = np.minimum(d, rects_distance(u - su * t, v - sv * t, rects))
    return d


@dataclass
class DrawContext:
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
        lum = luminance(np.asarray(src[y : y + h, x : x + w], np.float32))
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

    def free(self, win: ObjectWindow, d: Array, margin: float = 1.0) -> bool:
        """Whether an object (signed distance ``d``, grown by ``margin``) keeps clear of earlier changes."""
        return not (self.occupied[win.sl] & (d < margin)).any()

    def mark(self, win: ObjectWindow, mask: Array) -> None:
        self.occupied[win.sl] |= ndimage.binary_dilation(mask, iterations=3)


def _clutter(p: Array) -> float:
    """How far a patch is from open ground: texture, darkness (shadow, asphalt), greenness."""
    lum = luminance(p)
    green = float(np.mean(np.clip(p[..., 1] - np.maximum(p[..., 0], p[..., 2]), 0, None)))
    return float(lum.std()) + 0.5 * max(0.0, 110 - float(lum.mean())) + 1.5 * green


def most_roof_like(
    tile: Array, h: int, w: int, rng: np.random.Generator, n: int = 14, dark: float = 85
) -> tuple[int, int]:
    """Top-left of the most roof-like ``h x w`` window of a real tile among ``n`` random ones:
    homogeneous, neither dark (asphalt, shadow) nor green (vegetation)."""
    H, W = tile.shape[:2]
    best, pos = np.inf, (0, 0)
    for _ in range(n):
        y = int(rng.integers(0, max(1, H - h + 1)))
        x = int(rng.integers(0, max(1, W - w + 1)))
        p = np.asarray(tile[y : y + h, x : x + w], np.float32)
        lum = luminance(p)
        green = float(np.mean(p[..., 1] - np.maximum(p[..., 0], p[..., 2])))
        score = float(lum.std()) + 3 * max(0.0, green) + 0.6 * max(0.0, dark - float(lum.mean()))
        if score < best:
            best, pos = score, (y, x)
    return pos


def building_footprint(rng: np.random.Generator, lo: float = 4, hi: float = 30) -> list[Rect]:
    """A rectangular or L-shaped building footprint, sides 8-60 px (half sizes ``lo..hi``)."""
    a = rng.uniform(lo, hi)
    b = max(lo, a * rng.uniform(0.35, 1.0))
    rects: list[Rect] = [(0.0, 0.0, a, b)]
    if rng.random() < 0.3 and a > 7:  # L-shape: a wing at one end
        a2, b2 = a * rng.uniform(0.25, 0.5), b * rng.uniform(0.5, 1.0)
        su, sv = rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])
        rects.append((su * (a - a2), sv * (b + b2 - 0.5), a2, b2))
    return rects


def footprint_radius(rects: Sequence[Rect], extra: float = 0.0) -> float:
    """Radius of the circle about the object centre that holds the footprint, plus ``extra``."""
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


def _roof(ctx: DrawContext, win: ObjectWindow, rects: Sequence[Rect], d: Array, su: float, sv: float) -> Array:
    """Roof colours over a window: a real roof patch from a donor tile, or a rendered
    hip/gable/flat roof in a real tone, with eaves, shading and real grain. ``(su, sv)``: the
    shadow direction in the object frame (faces turned that way are darker)."""
    rng = ctx.rng
    h, w = win.shape
    if ctx.donors and rng.random() < 0.55:
        donor = ctx.donors[int(rng.integers(len(ctx.donors)))]
        y, x = most_roof_like(donor, h, w, rng)
        patch = np.asarray(donor[y : y + h, x : x + w], np.float32)
        if patch.shape[:2] != (h, w):
            patch = np.pad(patch, ((0, h - patch.shape[0]), (0, w - patch.shape[1]), (0, 0)), mode="reflect")
        colour = patch * np.float32(rng.uniform(0.92, 1.08))
        colour = colour * np.where(d > -1.2, 0.86, 1.0)[..., None].astype(np.float32)
        return colour
    if ctx.donors and rng.random() < 0.5:  # a tone taken from a real roof
        donor = ctx.donors[int(rng.integers(len(ctx.donors)))]
        y, x = most_roof_like(donor, 8, 8, rng)
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
    colour = colour * (0.94 + 0.12 * smooth_noise(rng, h, w, 6))[..., None]
    return colour.astype(np.float32)


def paste_building(
    ctx: DrawContext, canvas: Array, rects: Sequence[Rect], cy: float, cx: float, angle: float, margin: float = 1.0
) -> tuple[ObjectWindow, Array, Array] | None:
    """Paste a building (roof + soft shadow) into ``canvas``; its window, footprint and roof
    colours. Nothing is drawn (None) where it would touch an earlier change (+ ``margin``)."""
    rng = ctx.rng
    height = rng.uniform(2.0, 7.0)
    win = object_window(canvas.shape, cy, cx, footprint_radius(rects, height + 3), angle)
    if win is None:
        return None
    su, sv = ctx.shadow_uv(angle)
    d = rects_distance(win.u, win.v, rects)
    if not ctx.free(win, d, margin):
        return None
    alpha = feather(d, rng.uniform(0.35, 0.65))
    roof = _roof(ctx, win, rects, d, su, sv)
    inside = d < 0
    if inside.any():  # keep a roof distinguishable from the ground it lands on
        lum_roof = float(luminance(roof[inside]).mean())
        gap = lum_roof - float(luminance(canvas[win.sl][inside]).mean())
        if abs(gap) < 30:
            brighter = lum_roof < 70 or (gap >= 0 and lum_roof < 180)
            roof = roof * np.float32(1.35 if brighter else 0.68)
    ds = shadow_distance(win.u, win.v, rects, su, sv, height)
    shadow = ctx.shadow_dark * feather(ds, 0.8) * (1 - alpha)
    region = canvas[win.sl]
    region *= (1 - shadow)[..., None]
    paint_over(region, roof, alpha)
    return win, d < 0, roof


def rubble(ctx: DrawContext, win: ObjectWindow, d: Array, under: Array, spill: float) -> tuple[Array, Array]:
    """Rubble colours and alpha over a footprint distance ``d`` (+ ragged spill): chunky
    grey/brown debris with lit and shadowed facets and dark voids, tinted by ``under``."""
    rng = ctx.rng
    h, w = win.shape
    rag = smooth_noise(rng, h, w, 5) + 0.4 * smooth_noise(rng, h, w, 2)
    dr = d - spill * (0.25 + 0.75 * rag)
    alpha = feather(dr, 0.6)
    # debris heap: slabs of varying brightness, lit and shadowed facets, dark gaps
    hgt = 0.6 * smooth_noise(rng, h, w, rng.uniform(4, 7)) + 0.4 * smooth_noise(rng, h, w, 2)
    sy, sx = ctx.sun
    lit = 1.0 + 1.8 * (ndimage.shift(hgt, (1.5 * sy, 1.5 * sx), order=1, mode="nearest") - hgt)
    slabs = np.floor(smooth_noise(rng, h, w, rng.uniform(2.5, 4.5)) * 4) / 3  # 0, 1/3, 2/3, 1
    tex = (0.7 + 0.4 * slabs + 0.12 * (rng.random((h, w), np.float32) - 0.5)) * lit
    tex = np.where(smooth_noise(rng, h, w, 3) < rng.uniform(0.1, 0.22), tex * 0.42, tex)  # voids
    dust = np.array([[158, 152, 140], [170, 164, 152], [140, 134, 124], [128, 124, 118], [168, 154, 132]], np.float32)[
        int(rng.integers(5))
    ] * np.float32(ctx.tone)
    inside = d < 0
    mean_under = under[inside].mean(0) if inside.any() else dust
    mix = (rng.uniform(0.1, 0.5) * smooth_noise(rng, h, w, 4))[..., None]  # some pieces keep their colour
    base = dust * (1 - mix) + mean_under * mix
    colour = base * tex[..., None] * (1 + 0.03 * (rng.random((h, w, 3), np.float32) - 0.5))
    if rng.random() < 0.5:  # standing remnants (walls, slabs) of what was there
        keep = inside & (smooth_noise(rng, h, w, 6) > rng.uniform(0.72, 0.85))
        colour[keep] = under[keep] * 0.82
    return colour.astype(np.float32), alpha
