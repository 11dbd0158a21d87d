"""Deterministic, georeferenced, Gaza-like synthetic scene pairs (tests, sample data, benchmarks).

The scene is procedural: every pixel is a pure function of its absolute position, the seed
and the epoch. The ground is cut into square *parcels*; each parcel's land use, objects and
fate in the post scene come from a random generator seeded by ``(seed, parcel row, parcel
col)``. A block of the scene is rendered by drawing only the parcels that touch it, so a
20000x20000 scene is written block by block with flat memory, and any block split gives the
same pixels.

Pre scene: sand with low-frequency colour variation, a road grid, blocks of buildings (roofs,
roof details, shadows), crop fields with rows, greenhouses (long bright ribbed strips).

Post scene, real changes (labelled with the class table's ids, ``gaza_change``):
1 rubble where buildings were destroyed, 2 new buildings on sand, 3 refugee camps (dense
clusters of small tents), 4 destroyed farmland (scorched, cratered, tracked), 5 destroyed
greenhouses (torn covers, bare frames), 6 new greenhouses on former fields.

Post scene, pseudo-changes that stay label 0: illumination and colour shift, haze, seasonal
colour of fields, a sub-pixel misregistration, sensor noise, different shadow direction,
repainted roofs, and look-alikes (ploughed bare fields with furrows, often next to rubble).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine, from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window
from scipy import ndimage

from .atomic import discard, publish, temp_path
from .classes import ClassTable, load_class_table

#: Upper-left corner of the default scene: Gaza City, UTM zone 36N (EPSG:32636).
GAZA_ORIGIN = (637000.0, 3486500.0)
DEFAULT_CRS = "EPSG:32636"
DEFAULT_GSD = 0.5
DEFAULT_SIZE = 1536
PARCEL = 128  # parcel side in pixels
BLOCK = 1024  # rendering/writing block in pixels
NODATA = 0  # imagery values are kept in 1..255 so 0 can mean "no data"

# class ids of the default table (gaza_change)
DESTROYED_BUILDING, NEW_BUILDING, NEW_CAMP, DESTROYED_FARMLAND, DESTROYED_GREENHOUSE, NEW_GREENHOUSE = range(1, 7)

_URBAN, _FIELD, _GREENHOUSE, _SAND = range(4)
_ROAD_HALF = 5  # half width of roads, pixels; roads run on parcel borders
_MARGIN = 9  # objects keep this far from parcel borders (clear of roads)


@dataclass(frozen=True)
class SceneSpec:
    """What :func:`write_scene` makes."""

    size: int = DEFAULT_SIZE
    seed: int = 0
    crs: str = DEFAULT_CRS
    gsd: float = DEFAULT_GSD
    origin: tuple[float, float] = GAZA_ORIGIN
    post_crs: str | None = None  # None: the pre grid
    post_gsd: float | None = None
    nodata_border: int = 0  # nodata collar (pixels of the pre grid) on the post scene
    misregistration: tuple[float, float] = (0.35, -0.25)  # post shift (rows, cols), pixels
    changes: bool = True  # False: the same layout with only the pseudo-changes (label all 0)

    @property
    def transform(self) -> Affine:
        return from_origin(self.origin[0], self.origin[1], self.gsd, self.gsd)


# ---------------------------------------------------------------------------------------------
# Counter-based noise: a value per absolute pixel, identical whatever the block split.

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrap-around arithmetic is intended)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def hash01(rows: np.ndarray, cols: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) float32 from integer coordinates and a salt."""
    with np.errstate(over="ignore"):
        key = (rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ _mix(
            cols.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFF) * np.uint64(0x632BE59BD9B4E019)
        )
        return (_mix(key) >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def _pixel_noise(r0: int, c0: int, h: int, w: int, salt: int) -> np.ndarray:
    rr, cc = np.mgrid[r0 : r0 + h, c0 : c0 + w]
    return hash01(rr, cc, salt)


def value_noise(r0: int, c0: int, h: int, w: int, cell: int, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1): hashed lattice values every ``cell`` pixels, smoothstep-blended."""
    rows = np.arange(r0, r0 + h, dtype=np.int64)
    cols = np.arange(c0, c0 + w, dtype=np.int64)
    ri, ci = rows // cell, cols // cell
    fr = ((rows % cell) / cell).astype(np.float32)
    fc = ((cols % cell) / cell).astype(np.float32)
    fr, fc = fr * fr * (3 - 2 * fr), fc * fc * (3 - 2 * fc)
    lat_r = np.arange(ri[0], ri[-1] + 2)
    lat_c = np.arange(ci[0], ci[-1] + 2)
    lat = hash01(lat_r[:, None], lat_c[None, :], salt)
    a = lat[ri - ri[0]][:, ci - ci[0]]
    b = lat[ri - ri[0]][:, ci - ci[0] + 1]
    c = lat[ri - ri[0] + 1][:, ci - ci[0]]
    d = lat[ri - ri[0] + 1][:, ci - ci[0] + 1]
    top = a + (b - a) * fc[None, :]
    bot = c + (d - c) * fc[None, :]
    return top + (bot - top) * fr[:, None]


def _parcel_rng(seed: int, pi: int, pj: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, 7919, pi + 1_000_000, pj + 1_000_000])


# ---------------------------------------------------------------------------------------------
# Drawing on a block


class _Canvas:
    """The pre/post/label arrays of one block, addressed in absolute pixel coordinates."""

    def __init__(self, r0: int, c0: int, h: int, w: int, seed: int, changes: bool = True):
        self.r0, self.c0, self.h, self.w, self.seed = r0, c0, h, w, seed
        self.changes = changes  # apply the real changes (or only the pseudo-changes)
        self.pre = np.zeros((3, h, w), np.float32)
        self.post = np.zeros((3, h, w), np.float32)
        self.label = np.zeros((h, w), np.uint8)

    def clip(self, top: int, left: int, bottom: int, right: int):
        """Slices of the block covered by an absolute rectangle, and the rectangle clipped."""
        t, l = max(top, self.r0), max(left, self.c0)
        b, r = min(bottom, self.r0 + self.h), min(right, self.c0 + self.w)
        if t >= b or l >= r:
            return None
        return (slice(t - self.r0, b - self.r0), slice(l - self.c0, r - self.c0)), (t, l, b, r)

    def paint(
        self,
        which: str,
        rect,
        color,
        texture: Callable | None = None,
        mask: Callable | None = None,
        label: int | None = None,
    ) -> None:
        """Paint an absolute rectangle in ``pre``, ``post`` or ``both`` with a colour (3,),
        optionally modulated by ``texture(rows, cols) -> (h, w) factor`` and limited to
        ``mask(rows, cols) -> bool``; ``label`` writes the class id where painted."""
        got = self.clip(*rect)
        if got is None:
            return
        (sr, sc), (t, l, b, r) = got
        rows, cols = np.mgrid[t:b, l:r]
        value = np.asarray(color, np.float32)[:, None, None] * np.ones((1, b - t, r - l), np.float32)
        if texture is not None:
            value = value * texture(rows, cols)[None]
        m = mask(rows, cols) if mask is not None else None
        targets = (self.pre, self.post) if which == "both" else (getattr(self, which),)
        for arr in targets:
            if m is None:
                arr[:, sr, sc] = value
            else:
                arr[:, sr, sc] = np.where(m[None], value, arr[:, sr, sc])
        if label is not None:
            if m is None:
                self.label[sr, sc] = label
            else:
                self.label[sr, sc] = np.where(m, label, self.label[sr, sc])

    def noise(self, salt: int) -> Callable:
        seed = self.seed

        def tex(rows, cols, amp=0.08):
            return 1.0 + amp * (2 * hash01(rows, cols, seed * 131 + salt) - 1)

        return tex


# ---------------------------------------------------------------------------------------------
# Parcels


def _land_use(seed: int, pi: int, pj: int) -> int:
    """Land use of a parcel, biased by a 4x4-parcel zone so towns and farmland cluster."""
    zone = hash01(np.array([pi // 4]), np.array([pj // 4]), seed * 7 + 3)[0]
    u = hash01(np.array([pi]), np.array([pj]), seed * 7 + 5)[0]
    if zone < 0.5:  # town
        weights = (0.62, 0.08, 0.05, 0.25)
    else:  # farmland
        weights = (0.14, 0.42, 0.26, 0.18)
    return int(np.searchsorted(np.cumsum(weights), u * 0.999999, side="right"))


def _draw_parcel(cv: _Canvas, seed: int, pi: int, pj: int) -> None:
    rng = _parcel_rng(seed, pi, pj)
    top, left = pi * PARCEL, pj * PARCEL
    inner = (top + _MARGIN, left + _MARGIN, top + PARCEL - _MARGIN, left + PARCEL - _MARGIN)
    use = _land_use(seed, pi, pj)
    if use == _URBAN:
        _draw_urban(cv, rng, inner)
    elif use == _FIELD:
        _draw_field(cv, rng, inner)
    elif use == _GREENHOUSE:
        _draw_greenhouses(cv, rng, inner, where="both")
    else:
        _draw_sand(cv, rng, inner)


_ROOFS = np.array(
    [[205, 200, 190], [185, 180, 172], [222, 214, 196], [168, 120, 96], [196, 188, 160], [150, 150, 150]], np.float32
)


def _building_footprints(rng: np.random.Generator, inner) -> list[tuple[int, int, int, int]]:
    t, l, b, r = inner
    span_r, span_c = b - t, r - l
    nr, nc = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    out = []
    for i in range(nr):
        for j in range(nc):
            cell_h, cell_w = span_r // nr, span_c // nc
            h = int(rng.integers(max(12, cell_h // 2), cell_h - 4))
            w = int(rng.integers(max(12, cell_w // 2), cell_w - 4))
            y = t + i * cell_h + int(rng.integers(0, cell_h - h - 3))
            x = l + j * cell_w + int(rng.integers(0, cell_w - w - 3))
            out.append((y, x, y + h, x + w))
    return out


def _draw_building(cv: _Canvas, fp, which: str, roof: np.ndarray, detail_seed: int) -> None:
    """A roof with a parapet, a water tank or two, and its shadow (direction per epoch).

    ``detail_seed`` fixes the roof details, so an unchanged building looks the same in both
    epochs.
    """
    y0, x0, y1, x1 = fp
    rng = np.random.default_rng(detail_seed)
    shadows = {"pre": (4, 3), "post": (2, 5)}  # sun differs between epochs: a pseudo-change
    for epoch in ("pre", "post") if which == "both" else (which,):
        dy, dx = shadows[epoch]
        cv.paint(epoch, (y0 + dy, x0 + dx, y1 + dy, x1 + dx), (38, 36, 40), cv.noise(11))
    tex = cv.noise(13)
    cv.paint(which, fp, roof * 0.82, tex)
    cv.paint(which, (y0 + 2, x0 + 2, y1 - 2, x1 - 2), roof, tex)
    for _ in range(int(rng.integers(0, 3))):
        ty = int(rng.integers(y0 + 3, max(y0 + 4, y1 - 6)))
        tx = int(rng.integers(x0 + 3, max(x0 + 4, x1 - 6)))
        cv.paint(which, (ty, tx, ty + 3, tx + 3), (60, 66, 80))


def _draw_rubble(cv: _Canvas, fp, spill: int, label: int) -> None:
    y0, x0, y1, x1 = fp
    seed = cv.seed
    rect = (y0 - spill, x0 - spill, y1 + spill, x1 + spill)
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2 + spill, (x1 - x0) / 2 + spill

    def blob(rows, cols):  # rounded heap, ragged edge
        d = ((rows + 0.5 - cy) / ry) ** 4 + ((cols + 0.5 - cx) / rx) ** 4
        return d < 0.75 + 0.35 * hash01(rows // 3, cols // 3, seed + 17)

    def tex(rows, cols):
        speck = hash01(rows, cols, seed * 131 + 19)
        chunk = value_noise(int(rows[0, 0]), int(cols[0, 0]), rows.shape[0], rows.shape[1], 4, seed + 23)
        return 0.55 + 0.5 * chunk + 0.35 * (speck - 0.5)

    cv.paint("post", rect, (150, 140, 125), tex, mask=blob, label=label)


def _draw_urban(cv: _Canvas, rng: np.random.Generator, inner) -> None:
    t, l, b, r = inner
    cv.paint("both", inner, (176, 170, 158), cv.noise(29))  # paved yard
    for fp in _building_footprints(rng, inner):
        fate = rng.random()
        k = int(rng.integers(len(_ROOFS)))
        spill = int(rng.integers(1, 5))
        detail = int(rng.integers(2**31))
        _draw_building(cv, fp, "pre", _ROOFS[k], detail)
        if fate < 0.30 and cv.changes:
            _draw_rubble(cv, fp, spill, DESTROYED_BUILDING)
        elif 0.30 <= fate < 0.38:  # repainted roof: label stays 0
            _draw_building(cv, fp, "post", _ROOFS[(k + 2) % len(_ROOFS)], detail)
        else:
            _draw_building(cv, fp, "post", _ROOFS[k], detail)


def _field_colors(rng: np.random.Generator):
    base = np.array([92, 128, 70], np.float32) * rng.uniform(0.85, 1.1)
    seasonal = base * np.array([1.28, 1.08, 0.86], np.float32)  # drier in post: pseudo-change
    return base, seasonal


def _rows_texture(cv: _Canvas, period: int, vertical: bool, depth: float):
    def tex(rows, cols):
        k = cols if vertical else rows
        return (1.0 - depth * (k % period < period // 2)) * cv.noise(41)(rows, cols, 0.05)

    return tex


def _draw_field(cv: _Canvas, rng: np.random.Generator, inner) -> None:
    base, seasonal = _field_colors(rng)
    period, vertical = int(rng.integers(4, 8)), bool(rng.random() < 0.5)
    tex = _rows_texture(cv, period, vertical, 0.12)
    cv.paint("pre", inner, base, tex)
    fate = rng.random()
    seed = cv.seed
    if not cv.changes and (fate < 0.30 or 0.55 <= fate < 0.70):
        cv.paint("post", inner, seasonal, tex)
    elif fate < 0.30:  # destroyed farmland: scorched, cratered, criss-crossed by tracks
        t, l, b, r = inner
        craters = [(rng.uniform(t, b), rng.uniform(l, r), rng.uniform(2.5, 6)) for _ in range(int(rng.integers(6, 16)))]
        tracks = [(rng.uniform(-1, 1), rng.uniform(t, b)) for _ in range(int(rng.integers(2, 5)))]

        def scorched(rows, cols):
            f = 0.75 + 0.35 * value_noise(int(rows[0, 0]), int(cols[0, 0]), rows.shape[0], rows.shape[1], 9, seed + 43)
            f = f * (1 + 0.2 * (hash01(rows, cols, seed + 47) - 0.5))
            for cy, cx, rad in craters:
                d = np.hypot(rows - cy, cols - cx)
                f = np.where(d < rad, 0.45, np.where(d < rad + 2, 1.25, f))
            for slope, y0 in tracks:
                f = np.where(np.abs(rows - (y0 + slope * (cols - l))) < 1.5, 0.6, f)
            return f

        cv.paint("post", inner, (128, 112, 90), scorched, label=DESTROYED_FARMLAND)
    elif fate < 0.55:  # ploughed bare field: regular furrows, a look-alike that stays 0
        cv.paint("post", inner, (140, 118, 92), _rows_texture(cv, 4, not vertical, 0.22))
    elif fate < 0.70:  # new greenhouses over part of the field
        cv.paint("post", inner, seasonal, tex)
        _draw_greenhouses(cv, rng, inner, where="post")
    else:
        cv.paint("post", inner, seasonal, tex)


def _greenhouse_strips(rng: np.random.Generator, inner):
    t, l, b, r = inner
    vertical = bool(rng.random() < 0.5)
    n = int(rng.integers(2, 6))
    width = int(rng.integers(10, 16))
    gap = max(3, ((r - l if vertical else b - t) - n * width) // max(n, 1))
    strips = []
    for k in range(n):
        off = k * (width + gap)
        if vertical:
            strips.append((t + 2, l + off, b - 2, l + off + width))
        else:
            strips.append((t + off, l + 2, t + off + width, r - 2))
    return [s for s in strips if s[2] <= b and s[3] <= r], vertical


def _draw_greenhouses(cv: _Canvas, rng: np.random.Generator, inner, where: str) -> None:
    strips, vertical = _greenhouse_strips(rng, inner)
    ribs = 6

    def ribbed(rows, cols):
        k = rows if vertical else cols
        return np.where(k % ribs == 0, 0.82, 1.0) * cv.noise(53)(rows, cols, 0.03)

    white = np.array([232, 236, 238], np.float32)
    if where == "post":  # new greenhouses on a former field
        for s in strips:
            cv.paint("post", s, white, ribbed, label=NEW_GREENHOUSE)
        return
    cv.paint("both", inner, (198, 184, 150), cv.noise(59))  # sandy ground between strips
    destroyed = rng.random() < 0.35
    seed = cv.seed
    for s in strips:
        cv.paint("pre", s, white, ribbed)
        if rng.random() < 0.85 and destroyed and cv.changes:

            def torn(rows, cols):
                holes = value_noise(int(rows[0, 0]), int(cols[0, 0]), rows.shape[0], rows.shape[1], 5, seed + 61) < 0.55
                frame = (rows if vertical else cols) % ribs == 0
                return np.where(frame, 0.55, np.where(holes, 0.42, 0.92)) * (
                    1 + 0.15 * (hash01(rows, cols, seed + 67) - 0.5)
                )

            cv.paint("post", s, (205, 200, 190), torn, label=DESTROYED_GREENHOUSE)
        else:
            cv.paint("post", s, white, ribbed)


def _draw_sand(cv: _Canvas, rng: np.random.Generator, inner) -> None:
    fate = rng.random()
    t, l, b, r = inner
    if not cv.changes:
        return
    if fate < 0.28:  # refugee camp: dense rows of small tents, the camp area is the change
        tents = np.array([[236, 236, 232], [176, 198, 222], [210, 210, 200], [150, 170, 190]], np.float32)
        h0 = int(rng.integers(t, t + 20))
        w0 = int(rng.integers(l, l + 20))
        h1 = int(rng.integers(b - 20, b))
        w1 = int(rng.integers(r - 20, r))
        got = cv.clip(h0, w0, h1, w1)
        if got is not None:
            (sr, sc), _ = got
            cv.label[sr, sc] = NEW_CAMP
        y = h0 + 1
        while y + 4 < h1:
            th = int(rng.integers(4, 7))
            x = w0 + int(rng.integers(0, 3))
            while x + 4 < w1:
                tw = int(rng.integers(4, 8))
                if rng.random() < 0.85:
                    cv.paint(
                        "post", (y, x, min(y + th, h1), min(x + tw, w1)), tents[rng.integers(len(tents))], cv.noise(71)
                    )
                x += tw + int(rng.integers(2, 4))
            y += th + int(rng.integers(2, 4))
    elif fate < 0.55:  # new buildings
        for fp in _building_footprints(rng, inner)[: int(rng.integers(1, 4))]:
            _draw_building(cv, fp, "post", _ROOFS[int(rng.integers(len(_ROOFS)))], int(rng.integers(2**31)))
            got = cv.clip(*fp)
            if got is not None:
                (sr, sc), _ = got
                cv.label[sr, sc] = NEW_BUILDING


def _draw_roads(cv: _Canvas, seed: int) -> None:
    """Asphalt roads on every 3rd parcel row border and every 2nd parcel column border."""
    p0, p1 = cv.r0 // PARCEL, (cv.r0 + cv.h) // PARCEL + 1
    q0, q1 = cv.c0 // PARCEL, (cv.c0 + cv.w) // PARCEL + 1
    asphalt = (92, 92, 96)
    for pi in range(p0, p1 + 1):
        if pi % 3 == 0:
            y = pi * PARCEL
            cv.paint("both", (y - _ROAD_HALF, cv.c0, y + _ROAD_HALF, cv.c0 + cv.w), asphalt, cv.noise(83))
    for pj in range(q0, q1 + 1):
        if pj % 2 == 0:
            x = pj * PARCEL
            cv.paint("both", (cv.r0, x - _ROAD_HALF, cv.r0 + cv.h, x + _ROAD_HALF), asphalt, cv.noise(83))


def render_block(
    seed: int,
    r0: int,
    c0: int,
    h: int,
    w: int,
    misregistration: tuple[float, float] = (0.35, -0.25),
    changes: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render pre (3,h,w uint8), post (3,h,w uint8) and label (h,w uint8) of one block.

    Pixels depend only on absolute position and seed, never on the block split.
    ``changes=False`` renders the same place with only the pseudo-changes.
    """
    halo = 2  # rendered around the block so the sub-pixel shift of post needs no edge rule
    cv = _Canvas(r0 - halo, c0 - halo, h + 2 * halo, w + 2 * halo, seed, changes)
    ground = value_noise(cv.r0, cv.c0, cv.h, cv.w, 48, seed * 7 + 1)
    grain = _pixel_noise(cv.r0, cv.c0, cv.h, cv.w, seed * 7 + 2)
    sand = np.array([206, 190, 156], np.float32)[:, None, None] * (0.9 + 0.16 * ground + 0.05 * grain)[None]
    cv.pre[:] = sand
    cv.post[:] = sand
    _draw_roads(cv, seed)
    for pi in range(max(cv.r0 // PARCEL, 0), (cv.r0 + cv.h - 1) // PARCEL + 1):
        for pj in range(max(cv.c0 // PARCEL, 0), (cv.c0 + cv.w - 1) // PARCEL + 1):
            _draw_parcel(cv, seed, pi, pj)

    # post-only pseudo-changes: misregistration, illumination/colour shift, haze, noise
    post = ndimage.shift(cv.post, (0, *misregistration), order=1, mode="nearest")
    gain = np.array([1.07, 1.03, 0.95], np.float32)[:, None, None]
    haze = 26 * value_noise(cv.r0, cv.c0, cv.h, cv.w, 160, seed * 7 + 3) ** 2
    post = post * gain + 6 + haze[None] * (1 - post / 300)
    post += 6 * (_pixel_noise(cv.r0, cv.c0, cv.h, cv.w, seed * 7 + 4)[None] - 0.5)
    pre = cv.pre + 5 * (_pixel_noise(cv.r0, cv.c0, cv.h, cv.w, seed * 7 + 5)[None] - 0.5)
    core = (slice(None), slice(halo, halo + h), slice(halo, halo + w))
    to8 = lambda a: np.clip(np.rint(a), 1, 255).astype(np.uint8)  # noqa: E731  (0 = nodata)
    return to8(pre[core]), to8(post[core]), cv.label[halo : halo + h, halo : halo + w].copy()


# ---------------------------------------------------------------------------------------------
# Writing


def _blocks(height: int, width: int, size: int = BLOCK) -> Iterator[Window]:
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield Window(c, r, min(size, width - c), min(size, height - r))


def _label_profile(crs, transform, width: int, height: int) -> dict:
    """A tiled, deflated single-band uint8 GeoTIFF (the label)."""
    return dict(
        driver="GTiff",
        dtype="uint8",
        count=1,
        width=width,
        height=height,
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        BIGTIFF="IF_SAFER",
    )


def _image_profile(crs, transform, width: int, height: int, count: int = 3) -> dict:
    """The label's profile for an RGB image with nodata, pixel-interleaved and predicted."""
    profile = _label_profile(crs, transform, width, height)
    profile.update(count=count, nodata=NODATA, predictor=2, interleave="pixel", photometric="RGB")
    return profile


def write_scene(
    outdir: str | Path,
    spec: SceneSpec = SceneSpec(),
    table: ClassTable | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Path]:
    """Write ``pre.tif``, ``post.tif`` and ``label.tif`` into ``outdir``; return their paths.

    Every file is written under a temporary name and renamed when complete.
    ``progress(done, total)`` is called after each block.
    """
    table = table or load_class_table()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    n = spec.size
    crs = CRS.from_user_input(spec.crs)
    finals = {k: out / f"{k}.tif" for k in ("pre", "post", "label")}
    tmps = {k: temp_path(p) for k, p in finals.items()}
    same_grid = spec.post_crs is None and spec.post_gsd is None
    windows = list(_blocks(n, n))
    total = len(windows) * (1 if same_grid else 2)
    try:
        with (
            rasterio.open(tmps["pre"], "w", **_image_profile(crs, spec.transform, n, n)) as pre,
            rasterio.open(tmps["post"], "w", **_image_profile(crs, spec.transform, n, n)) as post,
            rasterio.open(tmps["label"], "w", **_label_profile(crs, spec.transform, n, n)) as lab,
        ):
            lab.write_colormap(1, table.colormap())
            for i, win in enumerate(windows):
                a, b, y = render_block(
                    spec.seed,
                    int(win.row_off),
                    int(win.col_off),
                    int(win.height),
                    int(win.width),
                    spec.misregistration,
                    spec.changes,
                )
                if spec.nodata_border:
                    collar = _collar_mask(win, n, spec.nodata_border)
                    b[:, collar] = NODATA
                    y[collar] = 0
                pre.write(a, window=win)
                post.write(b, window=win)
                lab.write(y, 1, window=win)
                if progress:
                    progress(i + 1, total)
        if not same_grid:
            warped = temp_path(finals["post"])
            try:
                _warp_post(tmps["post"], warped, spec, progress, len(windows), total)
            except BaseException:
                warped.unlink(missing_ok=True)
                raise
            tmps["post"].unlink()
            tmps["post"] = warped
        for k in ("label", "pre", "post"):
            publish(tmps[k], finals[k])
    finally:
        discard(*tmps.values())
    return finals


def _collar_mask(win: Window, n: int, border: int) -> np.ndarray:
    rr, cc = np.mgrid[int(win.row_off) : int(win.row_off + win.height), int(win.col_off) : int(win.col_off + win.width)]
    return (rr < border) | (cc < border) | (rr >= n - border) | (cc >= n - border)


def _warp_post(src_path: Path, dst_path: Path, spec: SceneSpec, progress, done0: int, total: int) -> None:
    """Resample the post scene onto another CRS and/or GSD (bilinear), block by block."""
    dst_crs = CRS.from_user_input(spec.post_crs or spec.crs)
    with rasterio.open(src_path) as src:
        kw = dict(crs=dst_crs, resampling=Resampling.bilinear, nodata=NODATA, src_nodata=NODATA)
        if spec.post_gsd:
            res: float | tuple[float, float] = spec.post_gsd
            if dst_crs.is_geographic:  # post_gsd in metres: degrees at the scene centre
                _, south, _, north = transform_bounds(src.crs, dst_crs, *src.bounds)
                mid = math.radians((south + north) / 2)
                res = (spec.post_gsd / (111_320.0 * math.cos(mid)), spec.post_gsd / 110_574.0)
            transform, width, height = calculate_default_transform(
                src.crs, dst_crs, src.width, src.height, *src.bounds, resolution=res
            )
            kw.update(transform=transform, width=width, height=height)
        with WarpedVRT(src, **kw) as vrt:
            profile = _image_profile(vrt.crs, vrt.transform, vrt.width, vrt.height)
            wins = list(_blocks(vrt.height, vrt.width))
            with rasterio.open(dst_path, "w", **profile) as dst:
                for i, win in enumerate(wins):
                    dst.write(vrt.read(window=win), window=win)
                    if progress:
                        progress(done0 + round((i + 1) * (total - done0) / len(wins)), total)
