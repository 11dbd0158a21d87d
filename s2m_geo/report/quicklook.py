"""A PNG per scene: the change classes over the post image (resampled onto the change
raster's grid), a legend with the class colours, a scale bar (true ground distance) and a
north arrow (true north, also for rotated grids)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_path
from ..classes import NODATA_CLASS

if TYPE_CHECKING:  # pragma: no cover
    from ..classes import ClassTable
    from ..describe.geo import GeoFrame


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _stretch(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Bands to 0..255: uint8 as is, other types by the scene's 2-98 % stretch over valid pixels."""
    from ..predict.scene import STRETCH_PCT, apply_stretch, percentile_stretch

    if data.dtype == np.uint8:
        return data
    return apply_stretch(data, percentile_stretch(data, valid, STRETCH_PCT)).astype(np.uint8)


def _read_post_on_grid(
    post: str, crs, transform, width: int, height: int, bands: list[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The post image on the quicklook grid: (3, H, W) uint8 and the valid mask."""
    import rasterio

    from ..predict.scene import Grid, read_scene

    with rasterio.open(post) as ds:
        count = ds.count
    if bands and all(1 <= b <= count for b in bands):
        idx = list(bands)[:3]
    else:
        idx = [1, 2, 3] if count >= 3 else [1]
    data, valid = read_scene(post, Grid(crs, transform, width, height), (idx * 3)[:3])
    return _stretch(data, valid), valid


def _frame(crs: object, transform: object, width: int, height: int) -> GeoFrame | None:
    """The quicklook grid's true-north frame (None without a CRS or where it cannot be made)."""
    from ..describe.geo import GeoFrame

    if crs is None:
        return None
    try:
        return GeoFrame.from_grid(crs, transform, width, height)
    except Exception:
        return None


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``limit``."""
    if limit <= 0:
        return 0.0
    k = math.floor(math.log10(limit))
    for m in (5, 2, 1):
        if m * 10**k <= limit:
            return float(m * 10**k)
    return float(10 ** (k - 1) * 5)


def _length_text(metres: float) -> str:
    if metres >= 1000:
        km = metres / 1000
        return f"{km:g} km"
    return f"{metres:g} m"


def render_quicklook(
    changes_tif: str | Path,
    post: str | Path,
    png: str | Path,
    table: ClassTable,
    title: str = "",
    bands: list[int] | None = None,
    max_size: int = 1024,
) -> Path:
    """Write a PNG: change classes over the post image, legend, scale bar, north arrow.

    The image is the change raster's grid reduced to at most ``max_size`` pixels a side;
    the post scene is resampled onto it (bilinear; ``bands`` picks its RGB bands, default
    1,2,3). Change pixels are tinted with their class colour and outlined; pixels without
    a prediction (nodata) are dimmed.
    """
    import rasterio
    from PIL import Image, ImageDraw
    from rasterio.enums import Resampling

    png = Path(png)
    with rasterio.open(changes_tif) as cds:
        h, w = cds.height, cds.width
        f = max(h, w) / max_size if max(h, w) > max_size else 1.0
        qw, qh = max(1, round(w / f)), max(1, round(h / f))
        classes = cds.read(1, out_shape=(qh, qw), resampling=Resampling.nearest)
        crs = cds.crs
        transform = cds.transform * cds.transform.scale(w / qw, h / qh)
    rgb, valid = _read_post_on_grid(str(post), crs, transform, qw, qh, bands)
    img = np.moveaxis(rgb, 0, -1).astype(np.float32)
    img[~valid] = 40.0
    nodata = classes == NODATA_CLASS
    img[nodata] *= 0.35
    ids = [c.id for c in table.change_classes]
    change = np.isin(classes, ids)
    # outline: change pixels with a 4-neighbour of another class
    edge = np.zeros_like(change)
    padded = np.pad(classes, 1, mode="edge")
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + qh, dx : dx + qw] != classes
    edge &= change
    for c in table.change_classes:
        sel = classes == c.id
        if not sel.any():
            continue
        col = np.array(c.rgb, np.float32)
        img[sel] = img[sel] * 0.45 + col * 0.55
        img[sel & edge] = col
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")

    font, small = _font(14), _font(12)
    pad, sw = 8, 14
    width = max(qw, 420)
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_w(text: str, fnt) -> int:
        box = draw_probe.textbbox((0, 0), text, font=fnt)
        return box[2] - box[0]

    items = [(c.label, c.rgb) for c in table.change_classes]
    if nodata.any():
        items.append(("no prediction (nodata)", (60, 60, 60)))
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = []
    line: list[tuple[str, tuple[int, int, int], int]] = []
    x = pad
    for label, color in items:
        iw = sw + 4 + text_w(label, small) + 14
        if line and x + iw > width - pad:
            rows.append(line)
            line, x = [], pad
        line.append((label, color, x))
        x += iw
    if line:
        rows.append(line)
    line_h = 20
    panel_h = pad + line_h + len(rows) * line_h + 34 + pad
    canvas = Image.new("RGB", (width, qh + panel_h), (255, 255, 255))
    canvas.paste(base, (0, 0))
    d = ImageDraw.Draw(canvas)

    # north arrow on the image, top right
    frame = _frame(crs, transform, qw, qh)
    north = frame.north_in_grid() if frame else None
    if north is not None:
        r = 18
        cx, cy = qw - r - 8, r + 22
        d.ellipse((cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4), fill=(255, 255, 255), outline=(0, 0, 0))
        ux, uy = north
        px, py = -uy, ux  # perpendicular
        tip = (cx + ux * r, cy + uy * r)
        tail = (cx - ux * r * 0.7, cy - uy * r * 0.7)
        left = (tail[0] + px * r * 0.5, tail[1] + py * r * 0.5)
        right = (tail[0] - px * r * 0.5, tail[1] - py * r * 0.5)
        d.polygon([tip, left, (cx - ux * r * 0.3, cy - uy * r * 0.3)], fill=(0, 0, 0))
        d.polygon([tip, right, (cx - ux * r * 0.3, cy - uy * r * 0.3)], fill=(255, 255, 255), outline=(0, 0, 0))
        nx, ny = cx + ux * (r + 14), cy + uy * (r + 14)
        box = d.textbbox((0, 0), "N", font=font)
        nw, nh = box[2] - box[0], box[3] - box[1]
        d.rectangle((nx - nw / 2 - 2, ny - nh / 2 - 3, nx + nw / 2 + 2, ny + nh / 2 + 3), fill=(255, 255, 255))
        d.text((nx, ny), "N", font=font, fill=(0, 0, 0), anchor="mm")

    y = qh + pad
    d.text((pad, y), title or Path(str(changes_tif)).stem, font=font, fill=(0, 0, 0))
    y += line_h
    for row in rows:
        for label, color, x in row:
            d.rectangle((x, y + 2, x + sw, y + 2 + sw), fill=tuple(color), outline=(0, 0, 0))
            d.text((x + sw + 4, y + 1), label, font=small, fill=(0, 0, 0))
        y += line_h
    # scale bar, bottom left
    mpp = frame.metres_per_pixel() if frame else None
    y += 6
    if mpp is not None:
        length = nice_length(min(qw, width) * 0.3 * mpp)
        bar = max(1, round(length / mpp))
        segs = 4
        for i in range(segs):
            x0 = pad + i * bar / segs
            d.rectangle(
                (x0, y, pad + (i + 1) * bar / segs, y + 6),
                fill=(0, 0, 0) if i % 2 == 0 else (255, 255, 255),
                outline=(0, 0, 0),
            )
        d.text((pad, y + 9), "0", font=small, fill=(0, 0, 0))
        d.text((pad + bar, y + 9), _length_text(length), font=small, fill=(0, 0, 0), anchor="ma")
    else:
        d.text((pad, y), "no CRS: image terms, no scale", font=small, fill=(0, 0, 0))

    with atomic_path(png) as tmp:
        canvas.save(tmp, format="PNG", compress_level=6)
    return Path(png)
