"""Distractors: harmless real-world change (cars parked, left or moved, seasonal vegetation
colour, a cloud or tree shadow), label 0."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .draw import DrawContext, feather, object_window, paint_over, rects_distance, shadow_distance

Array = np.ndarray


_CARS = np.array(
    [[236, 236, 236], [28, 28, 30], [150, 150, 156], [165, 32, 30], [40, 58, 120], [205, 200, 188], [70, 72, 76]],
    np.float32,
)


def _car(ctx: DrawContext, canvas: Array, cy: float, cx: float, angle: float, colour: Array) -> None:
    rng = ctx.rng
    a, b = rng.uniform(6, 8), rng.uniform(2.4, 3.2)
    win = object_window(canvas.shape, cy, cx, a + 4, angle)
    if win is None:
        return
    d = rects_distance(win.u, win.v, [(0, 0, a, b)])
    su, sv = ctx.shadow_uv(angle)
    shadow = ctx.shadow_dark * 0.7 * feather(shadow_distance(win.u, win.v, [(0, 0, a, b)], su, sv, 1.5), 0.6)
    alpha = feather(d, 0.45)
    body = np.broadcast_to(colour, win.shape + (3,)).copy()
    glass = (np.abs(win.u - a * 0.35) < a * 0.18) | (np.abs(win.u + a * 0.45) < a * 0.1)
    body[glass] = body[glass] * 0.35 + 12
    region = canvas[win.sl]
    region *= (1 - shadow * (1 - alpha))[..., None]
    paint_over(region, body, alpha)


def add_distractors(ctx: DrawContext, pre: Array, post: Array) -> None:
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
        amount = rng.uniform(0.1, 0.25) * feather(d - 1, 0.3)
        target *= (1 - amount)[..., None]
