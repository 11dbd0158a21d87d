"""Change objects composited into a real tile: new and destroyed buildings, new refugee camps,
destroyed fields, destroyed and new greenhouses. Each draws into pre/post/label in place and
returns True when it placed one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np

from ...synthetic import hash01
from .draw import (
    DrawContext,
    ObjectWindow,
    Rect,
    building_footprint,
    feather,
    footprint_radius,
    most_roof_like,
    object_window,
    paint_over,
    paste_building,
    rects_distance,
    rubble,
    shadow_distance,
    smooth_noise,
)

Array = np.ndarray


def _obj_building_new(ctx: DrawContext, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rects = building_footprint(ctx.rng)
    at = ctx.place(footprint_radius(rects), open_ground=ctx.rng.random() < 0.6)
    if at is None:
        return False
    got = paste_building(ctx, post, rects, *at, ctx.rng.uniform(0, np.pi))
    if got is None:
        return False
    win, mask, _ = got
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


def _obj_building_destroyed(ctx: DrawContext, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rng = ctx.rng
    spill = rng.uniform(1.5, 7.0)
    if rng.random() < 0.35:  # a homogeneous, roof-like area of the real tile itself
        rects = building_footprint(rng, 5, 22)[:1]
        cu, cv, a, b = rects[0]
        y, x = most_roof_like(ctx.bg, int(2 * b), int(2 * a), rng, n=20, dark=125)
        cy, cx = y + b, x + a
        r = ctx.occupied[max(0, y) : y + int(2 * b), max(0, x) : x + int(2 * a)]
        if r.size and r.mean() > 0.04:
            return False
        win = object_window(pre.shape, cy, cx, footprint_radius(rects, spill + 3), 0.0)
        if win is None:
            return False
        d = rects_distance(win.u, win.v, rects)
        if not ctx.free(win, d, spill + 1):
            return False
        under = pre[win.sl].copy()
    else:  # a pasted building in pre
        rects = building_footprint(rng)
        at = ctx.place(footprint_radius(rects, spill))
        if at is None:
            return False
        got = paste_building(ctx, pre, rects, *at, rng.uniform(0, np.pi), margin=spill + 1)
        if got is None:
            return False
        win, _, _ = got  # post keeps the ground: building and shadow are gone, rubble on top
        d = rects_distance(win.u, win.v, rects)
        under = pre[win.sl].copy()
    colour, alpha = rubble(ctx, win, d, under, spill)
    paint_over(post[win.sl], colour, alpha)
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
    win: ObjectWindow
    d: Array


def _open_patch(
    ctx: DrawContext,
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
    win = object_window(shape, *at, math.hypot(A, B) + pad, angle)
    if win is None:
        return None
    d = rects_distance(win.u, win.v, [(0, 0, A, B)]) + rough * (smooth_noise(rng, *win.shape, cell) - 0.5)
    return _Patch(A, B, angle, win, d) if ctx.free(win, d) else None


def _obj_camp(ctx: DrawContext, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rng = ctx.rng
    patch = _open_patch(ctx, post.shape, (18, 60), (14, 45), pad=4, rough=6, cell=10)
    if patch is None:
        return False
    A, B, angle, win, d = patch
    h, w = win.shape
    u, v = win.u, win.v
    region = feather(d, 1.0)
    # cleared / trampled ground
    soil = _SOIL[int(rng.integers(len(_SOIL)))] * np.float32(ctx.tone)
    ground = soil * (0.9 + 0.15 * smooth_noise(rng, h, w, 8))[..., None] * (1 + 0.04 * ctx.grain((h, w)))[..., None]
    paint_over(post[win.sl], ground.astype(np.float32), region * np.float32(rng.uniform(0.45, 0.85)))
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
    a_t = feather(dt, 0.45)
    shadow = ctx.shadow_dark * 0.8 * feather(ds, 0.6) * (1 - a_t)
    post[win.sl] *= (1 - shadow)[..., None]
    colour = _TENTS[np.minimum((pick * len(_TENTS)).astype(np.int64), len(_TENTS) - 1)] * np.float32(ctx.tone)
    colour = colour * np.where(fv < 0, 1.0, rng.uniform(0.8, 0.9))[..., None]
    colour = colour * (1 + 0.03 * ctx.grain((h, w)))[..., None]
    paint_over(post[win.sl], colour.astype(np.float32), a_t)
    mask = (region > 0.5) & (d < 0)
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


_CROPS = np.array(
    [[78, 104, 58], [96, 122, 66], [110, 128, 74], [124, 120, 80], [70, 92, 56], [132, 138, 90]], np.float32
)


def _obj_field(ctx: DrawContext, pre: Array, post: Array, label: Array, cid: int) -> bool:
    rng = ctx.rng
    patch = _open_patch(ctx, pre.shape, (25, 80), (20, 60), pad=3, rough=3, cell=16)
    if patch is None:
        return False
    A, B, _, win, d = patch
    h, w = win.shape
    u, v = win.u, win.v
    alpha = feather(d, rng.uniform(0.6, 1.2))
    # pre: crop rows
    period = rng.uniform(3, 7)
    depth = rng.uniform(0.1, 0.25)
    rows = 1 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * v / period))
    crop = _CROPS[int(rng.integers(len(_CROPS)))] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    field_ = crop * (rows * (0.88 + 0.24 * smooth_noise(rng, h, w, 24)) * (1 + 0.05 * ctx.grain((h, w))))[..., None]
    paint_over(pre[win.sl], field_.astype(np.float32), alpha)
    # post: scorched, cratered, tracked soil
    soil = (
        np.array([148, 128, 102], np.float32)
        * np.float32(rng.uniform(0.85, 1.12) * ctx.tone)
        * rng.uniform(0.96, 1.04, 3).astype(np.float32)
    )
    f = (0.75 + 0.35 * smooth_noise(rng, h, w, 9)) * (1 + 0.2 * (rng.random((h, w), np.float32) - 0.5))
    for _ in range(int(rng.integers(2, 14))):  # craters: dark bowl, bright ejecta rim
        cu, cv, rad = rng.uniform(-A, A), rng.uniform(-B, B), rng.uniform(1.5, 7.0)
        dist = np.hypot(u - cu, v - cv) * (1 + 0.15 * (smooth_noise(rng, h, w, 3) - 0.5))
        f = f * (1 - 0.55 * np.exp(-((dist / rad) ** 2)) + 0.22 * np.exp(-(((dist - 1.4 * rad) / (0.45 * rad)) ** 2)))
    for _ in range(int(rng.integers(1, 5))):  # vehicle tracks
        slope, v0, tw = rng.uniform(-1, 1), rng.uniform(-B, B), rng.uniform(0.7, 1.6)
        f = f * (1 - 0.35 * np.exp(-(((v - (v0 + slope * u)) / tw) ** 2)))
    if rng.random() < 0.5:  # burnt patches
        burn = np.clip((rng.uniform(0.2, 0.4) - smooth_noise(rng, h, w, 12)) / 0.08, 0, 1)
        f = f * (1 - 0.45 * burn)
    if rng.random() < 0.4:  # faint stubble rows left
        f = f * (1 - 0.08 * (0.5 + 0.5 * np.cos(2 * np.pi * v / period)))
    scarred = soil * (f * (1 + 0.05 * ctx.grain((h, w))))[..., None]
    paint_over(post[win.sl], scarred.astype(np.float32), alpha)
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


def _greenhouse_colour(ctx: DrawContext, win: ObjectWindow, rects: Sequence[Rect], width: float) -> Array:
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
    tex = arch * ribs * (0.96 + 0.06 * smooth_noise(rng, h, w, 10)) * (1 + 0.02 * ctx.grain((h, w)))
    return (cover * tex[..., None]).astype(np.float32)


def _obj_greenhouse(ctx: DrawContext, pre: Array, post: Array, label: Array, cid: int, destroyed: bool) -> bool:
    rng = ctx.rng
    rects, width = _greenhouse_geometry(rng)
    radius = footprint_radius(rects, 3)
    at = ctx.place(radius * 0.8, open_ground=rng.random() < 0.7)
    if at is None:
        return False
    angle = rng.uniform(0, np.pi)
    win = object_window(pre.shape, *at, radius, angle)
    if win is None:
        return False
    h, w = win.shape
    d = rects_distance(win.u, win.v, rects)
    if not ctx.free(win, d):
        return False
    alpha = feather(d, rng.uniform(0.35, 0.6))
    su, sv = ctx.shadow_uv(angle)
    ds = shadow_distance(win.u, win.v, rects, su, sv, rng.uniform(1.0, 3.0))
    shadow = ctx.shadow_dark * 0.8 * feather(ds, 0.7) * (1 - alpha)
    intact = _greenhouse_colour(ctx, win, rects, width)
    if destroyed:
        before = post[win.sl].copy()
        pre[win.sl] *= (1 - shadow)[..., None]
        paint_over(pre[win.sl], intact, alpha)
        # post: torn covers, bare frames, holes onto dirt
        rib = rng.uniform(4, 7)
        holes = smooth_noise(rng, h, w, rng.uniform(3, 7)) < rng.uniform(0.4, 0.65)
        frame = np.mod(win.u, rib) < 1.0
        dirt = before * 0.55 + np.array([110, 100, 85], np.float32) * 0.45
        remnant = np.array([205, 200, 190], np.float32) * (0.85 + 0.15 * rng.random((h, w), np.float32))[..., None]
        torn = np.where(holes[..., None], dirt, remnant)
        torn = np.where(frame[..., None], np.float32(rng.uniform(0.45, 0.7)) * torn, torn)
        paint_over(post[win.sl], torn.astype(np.float32), alpha)
    else:
        post[win.sl] *= (1 - shadow)[..., None]
        paint_over(post[win.sl], intact, alpha)
    mask = d < 0
    label[win.sl][mask] = cid
    ctx.mark(win, mask)
    return True


CHANGE_OBJECTS: dict[str, Callable[..., bool]] = {
    "building_destroyed": _obj_building_destroyed,
    "building_new": _obj_building_new,
    "refugee_camp_new": _obj_camp,
    "agricultural_land_destroyed": _obj_field,
    "greenhouse_destroyed": partial(_obj_greenhouse, destroyed=True),
    "greenhouse_new": partial(_obj_greenhouse, destroyed=False),
}
