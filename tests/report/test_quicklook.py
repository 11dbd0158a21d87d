"""Quicklook PNGs: the post image on the change raster's grid, tinted by class, with a north
arrow and a scale bar in true ground terms."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image

from s2m_geo.classes import NODATA_CLASS, load_class_table
from s2m_geo.report.quicklook import render_quicklook

ARROW = 72  # the north arrow's corner (top right), left out of pixel comparisons


def _changes(src, path, classes):
    with rasterio.open(src) as ds:
        prof = dict(driver="GTiff", count=1, dtype="uint8", crs=ds.crs, transform=ds.transform)
    with rasterio.open(path, "w", width=classes.shape[1], height=classes.shape[0], nodata=NODATA_CLASS, **prof) as ds:
        ds.write(classes, 1)
    return path


def test_classes_are_tinted_over_the_post_image(small_scene, tmp_path):
    table = load_class_table("gaza_change")
    with rasterio.open(small_scene["label"]) as ds:
        classes = ds.read(1)
    classes[:, :16] = NODATA_CLASS  # a strip without prediction
    tif = _changes(small_scene["post"], tmp_path / "c.tif", classes)
    png = render_quicklook(tif, small_scene["post"], tmp_path / "q.png", table, title="scene 0")
    with Image.open(png) as im:
        img = np.asarray(im.convert("RGB")).astype(np.float32)
    h, w = classes.shape
    assert img.shape[1] >= w and img.shape[0] > h  # the legend panel below
    img = img[:h, :w]
    with rasterio.open(small_scene["post"]) as ds:  # same grid: no resampling
        post = np.moveaxis(ds.read([1, 2, 3]), 0, -1).astype(np.float32)
    expect = post.copy()
    expect[classes == NODATA_CLASS] *= 0.35
    padded = np.pad(classes, 1, mode="edge")
    inner = np.ones_like(classes, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        inner &= padded[dy : dy + h, dx : dx + w] == classes
    seen = 0
    for c in table.change_classes:
        sel = classes == c.id
        expect[sel & inner] = expect[sel & inner] * 0.45 + np.array(c.rgb, np.float32) * 0.55
        expect[sel & ~inner] = c.rgb
        seen += int(sel.any())
    assert seen >= 3
    keep = np.ones((h, w), bool)
    keep[:ARROW, -ARROW:] = False
    diff = np.abs(img - np.floor(np.clip(expect, 0, 255)))[keep]
    assert diff.max() <= 1.0


def test_quicklook_scale_and_north():
    from rasterio.crs import CRS
    from rasterio.transform import Affine, from_origin

    from s2m_geo.describe.geo import GeoFrame
    from s2m_geo.report.quicklook import nice_length

    def _north_vector(crs, t, w, h):
        return GeoFrame.from_grid(crs, t, w, h).north_in_grid()

    def _metres_per_pixel(crs, t, w, h):
        return GeoFrame.from_grid(crs, t, w, h).metres_per_pixel()

    assert [nice_length(x) for x in (0.7, 1, 3.2, 74, 999, 12345)] == [0.5, 1, 2, 50, 500, 10000]
    utm = CRS.from_epsg(32636)
    t = from_origin(637000, 3486500, 2.0, 2.0)
    assert _metres_per_pixel(utm, t, 100, 100) == pytest.approx(2.0, rel=2e-3)  # UTM scale factor
    dx, dy = _north_vector(CRS.from_epsg(4326), from_origin(34.4, 31.5, 1e-4, 1e-4), 100, 100)
    assert (dx, dy) == pytest.approx((0.0, -1.0), abs=1e-9)  # north is up
    south_up = Affine(-1e-4, 0, 34.41, 0, 1e-4, 31.49)  # rotated by 180°
    assert _north_vector(CRS.from_epsg(4326), south_up, 100, 100) == pytest.approx((0.0, 1.0), abs=1e-9)
    dx, dy = _north_vector(utm, t, 100, 100)  # Gaza is east of UTM 36N's central meridian: grid north
    assert dy < -0.99 and dx < 0  # is east of true north, so true north leans left in the image
    assert _north_vector(None, t, 10, 10) is None and _metres_per_pixel(None, t, 10, 10) is None
