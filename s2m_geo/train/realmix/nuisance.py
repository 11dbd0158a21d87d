"""Same-date nuisance ("pseudo-change") on one epoch: sub-pixel misregistration, radiometry,
blur, saturation, haze, sensor noise and JPEG blockiness."""

from __future__ import annotations

import io
import math

import numpy as np
from scipy import ndimage

from .draw import smooth_noise

Array = np.ndarray


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
        field_ = smooth_noise(rng, h, w, int(rng.integers(48, 200)))
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
