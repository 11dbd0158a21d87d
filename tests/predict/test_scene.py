"""Scene pairs on one target grid: alignment, masks, band selection, scaling, errors, threads."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.warp import transform as warp_points
from rasterio.windows import Window

from s2m_geo.cli.main import cli, flag_names
from s2m_geo.errors import InputError
from s2m_geo.predict.scene import (
    Grid,
    clip_window,
    coarse_shape,
    footprint_overlap_fraction,
    integer_offset,
    open_pair,
    percentile_stretch,
    read_scene,
    snap_box,
)
from s2m_geo.synthetic import SceneSpec, write_scene

# ---------------------------------------------------------------------------------------------
# helpers


def _read(path, window=None):
    with rasterio.open(path) as ds:
        return ds.read(window=window)


def _profile(path):
    with rasterio.open(path) as ds:
        return ds.profile.copy()


def _write(path, data, **profile):
    """Write (C,h,w) ``data`` as a GeoTIFF; ``profile`` overrides the defaults."""
    data = np.asarray(data)
    prof = dict(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype=data.dtype.name)
    prof.update(profile)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
    return Path(path)


def _copy_window(src, dst, window, **overrides):
    """Write ``window`` of ``src`` as a new GeoTIFF with the right transform."""
    with rasterio.open(src) as ds:
        data = ds.read(window=window)
        prof = dict(crs=ds.crs, transform=ds.window_transform(window), nodata=ds.nodata)
    prof.update(overrides)
    return _write(dst, data, **prof)


@pytest.fixture(scope="module")
def warped_scene(tmp_path_factory):
    """Post on EPSG:4326 at 0.7 m, and the same seed with post on pre's grid (reference)."""
    root = tmp_path_factory.mktemp("warped")
    warped = write_scene(root / "warped", SceneSpec(size=384, seed=3, post_crs="EPSG:4326", post_gsd=0.7))
    same = write_scene(root / "same", SceneSpec(size=384, seed=3))
    return warped, same


@pytest.fixture(scope="module")
def uint16_pair(tmp_path_factory):
    """A 256x256 uint16 pair (nodata 0, a 10-pixel collar on post) on one grid."""
    root = tmp_path_factory.mktemp("u16")
    base = write_scene(root / "base", SceneSpec(size=256, seed=5, nodata_border=10))
    out = {}
    for k in ("pre", "post"):
        data = _read(base[k]).astype(np.uint16) * 40 + 300
        data[_read(base[k]) == 0] = 0
        out[k] = _write(
            root / f"{k}16.tif", data, **{kk: _profile(base[k])[kk] for kk in ("crs", "transform")}, nodata=0
        )
    return out


# ---------------------------------------------------------------------------------------------
# pure helpers


def test_pure_window_math():
    t = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)
    assert integer_offset(t, t * Affine.translation(7, 3)) == (3, 7)
    assert integer_offset(t, t * Affine.translation(7.5, 3)) is None
    assert integer_offset(t, Affine(1.0, 0, 1000.0, 0, -1.0, 2000.0)) is None
    assert snap_box((2.0000001, 3.9999999, 10.5, 20.0)) == (2, 4, 11, 20)
    win, dst = clip_window(Window(-5, 8, 20, 10), height=12, width=10)
    assert (win.col_off, win.row_off, win.width, win.height) == (0, 8, 10, 4)
    assert dst == (slice(0, 4), slice(5, 15))
    assert clip_window(Window(10, 0, 5, 5), height=12, width=10) is None
    assert footprint_overlap_fraction((0, 0, 10, 10), (5, 0, 20, 10)) == pytest.approx(0.5)
    assert footprint_overlap_fraction((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert coarse_shape(5000, 300) == (5, 1000, 60)
    assert coarse_shape(100, 90) == (1, 100, 90)
    vals = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    ((lo, hi),) = percentile_stretch(vals, np.ones((10, 10), bool))
    assert lo == pytest.approx(1.98) and hi == pytest.approx(97.02)
    g = Grid(CRS.from_epsg(32636), t, 40, 20)
    assert g.res == (0.5, 0.5) and g.shape == (20, 40)
    assert tuple(g.bounds) == (1000.0, 1990.0, 1020.0, 2000.0)
    assert g.window_transform(Window(4, 2, 8, 8)) == t * Affine.translation(4, 2)


# ---------------------------------------------------------------------------------------------
# grids and reads


def test_same_grid_pair_is_pre_grid_and_reads_raw_pixels(small_scene):
    with rasterio.open(small_scene["pre"]) as ds:
        pre_grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
    with open_pair(small_scene["pre"], small_scene["post"]) as pair:
        assert pair.grid == pre_grid
        assert pair.grid.crs == pre_grid.crs and pair.grid.transform == pre_grid.transform
        assert pair.pre_offset == (0, 0) and pair.post_offset == (0, 0)
        assert pair.warped == {"pre": False, "post": False}
        assert pair.bands == (1, 2, 3) and pair.post_bands == (1, 2, 3)
        assert pair.dtype_in == {"pre": "uint8", "post": "uint8"}
        assert pair.stretch == {"pre": None, "post": None}
        assert pair.pre_path == str(small_scene["pre"]) and pair.post_path == str(small_scene["post"])
        win = Window(100, 50, 200, 150)
        pre, post, valid = pair.read(win)
        assert pre.dtype == post.dtype == np.float32 and valid.dtype == bool
        assert pre.shape == post.shape == (3, 150, 200) and valid.shape == (150, 200)
        np.testing.assert_array_equal(pre, _read(small_scene["pre"], win))
        np.testing.assert_array_equal(post, _read(small_scene["post"], win))
        assert valid.all()


def test_post_on_another_crs_and_gsd_is_aligned_to_the_pixel(warped_scene):
    warped, same = warped_scene
    with rasterio.open(warped["pre"]) as ds:
        pre_grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
    with rasterio.open(warped["post"]) as ds:
        assert ds.crs.to_epsg() == 4326
    with open_pair(warped["pre"], warped["post"]) as pair:
        assert pair.grid == pre_grid
        assert pair.warped == {"pre": False, "post": True} and pair.post_offset is None
        pre, post, valid = pair.read(pair.grid.window())
    np.testing.assert_array_equal(pre, _read(warped["pre"]))
    ref = _read(same["post"]).astype(np.float32)  # the same post rendered on pre's grid
    inner = valid.copy()
    inner[:4], inner[-4:], inner[:, :4], inner[:, -4:] = False, False, False, False
    assert inner.mean() > 0.9
    mad = {
        (dy, dx): float(np.abs(post - np.roll(ref, (dy, dx), axis=(1, 2)))[:, inner].mean())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    }
    assert mad[0, 0] < 6.0
    # alignment to the pixel: any one-pixel shift matches clearly worse
    assert all(mad[0, 0] < 0.8 * v for k, v in mad.items() if k != (0, 0))


def test_read_scene_puts_one_scene_on_a_grid_as_the_pair_reads_it(warped_scene, uint16_pair):
    warped, _ = warped_scene
    with open_pair(warped["pre"], warped["post"]) as pair:
        _, post, valid = pair.read(pair.grid.window())
        grid = pair.grid
    data, ok = read_scene(warped["post"], grid, (1, 2, 3))
    assert data.dtype == np.uint8 and data.shape == (3, *grid.shape)
    np.testing.assert_array_equal(ok, valid)  # pre is valid everywhere: the joint mask is post's
    np.testing.assert_array_equal(np.where(ok, data, 0), post)
    with open_pair(uint16_pair["pre"], uint16_pair["post"]) as pair:  # nodata 0, a 10-px collar
        _, _, valid = pair.read(pair.grid.window())
        grid = pair.grid
    data, ok = read_scene(uint16_pair["post"], grid, (3, 2, 1))
    assert data.dtype == np.uint16 and not ok[:10].any() and ok[10:-10, 10:-10].all()
    np.testing.assert_array_equal(ok, valid)
    np.testing.assert_array_equal(data[:, ok], _read(uint16_pair["post"])[::-1][:, ok])


def test_read_scene_of_a_mosaic_does_not_open_its_sources_for_their_layout(tmp_path, monkeypatch):
    """One whole read has no block cache to size: the sources' blocks are not looked up."""
    import s2m_geo.predict.scene as scene
    from s2m_geo.testing import mosaic_vrt

    paths = write_scene(tmp_path, SceneSpec(size=128, seed=3))
    vrt = mosaic_vrt([(paths["post"], 0, 0)], tmp_path / "post.vrt", 128)
    with open_pair(paths["pre"], paths["post"]) as pair:
        grid = pair.grid
    monkeypatch.setattr(scene, "_sources_block_shape", lambda *a: pytest.fail("sources opened"))
    data, ok = read_scene(vrt, grid, (1, 2, 3))
    direct, direct_ok = read_scene(paths["post"], grid, (1, 2, 3))
    np.testing.assert_array_equal(ok, direct_ok)
    np.testing.assert_array_equal(data[:, ok], direct[:, ok])


def test_read_scene_without_crs_resamples_the_image_itself(tmp_path):
    img = np.repeat(np.repeat(np.arange(16, dtype=np.uint8).reshape(1, 4, 4) * 10, 8, 1), 8, 2)
    path = _write(tmp_path / "plain.tif", np.concatenate([img, img + 1, img + 2]))
    grid = Grid(None, Affine.identity(), 4, 4)  # the 32x32 image reduced 8 times
    data, ok = read_scene(path, grid, (2,), resampling=Resampling.nearest)
    assert ok.all()
    np.testing.assert_array_equal(data[0], img[0, ::8, ::8] + 1)


def test_nodata_collar_is_invalid_exactly(tmp_path):
    paths = write_scene(tmp_path, SceneSpec(size=256, seed=2, nodata_border=16))
    with open_pair(paths["pre"], paths["post"]) as pair:
        _, post, valid = pair.read(pair.grid.window())
    collar = np.ones((256, 256), bool)
    collar[16:-16, 16:-16] = False
    np.testing.assert_array_equal(valid, ~collar)
    assert (post[:, collar] == 0).all()


def test_partial_overlap_grid_is_the_intersection_on_pre_pixels(small_scene, tmp_path):
    win = Window(100, 60, 300, 400)  # cols 100..400, rows 60..460 of pre
    post = _copy_window(small_scene["post"], tmp_path / "post_crop.tif", win)
    with rasterio.open(small_scene["pre"]) as ds:
        pre_t = ds.transform
    with open_pair(small_scene["pre"], post) as pair:
        assert pair.grid.transform == pre_t * Affine.translation(100, 60)
        assert (pair.grid.width, pair.grid.height) == (300, 400)
        assert pair.pre_offset == (60, 100) and pair.post_offset == (0, 0)
        assert pair.warped == {"pre": False, "post": False}
        pre, post_v, valid = pair.read(Window(10, 20, 64, 32))
    raw = Window(110, 80, 64, 32)
    np.testing.assert_array_equal(pre, _read(small_scene["pre"], raw))
    np.testing.assert_array_equal(post_v, _read(small_scene["post"], raw))
    assert valid.all()


def test_post_reaching_beyond_pre(small_scene, tmp_path):
    # post shifted 50 px west and 30 px north of pre: the grid keeps pre's part only
    data = _read(small_scene["post"])
    prof = _profile(small_scene["post"])
    post = _write(
        tmp_path / "post_shift.tif",
        data,
        crs=prof["crs"],
        nodata=0,
        transform=prof["transform"] * Affine.translation(-50, -30),
    )
    with open_pair(small_scene["pre"], post) as pair:
        assert pair.grid.transform == prof["transform"]
        assert (pair.grid.width, pair.grid.height) == (462, 482)
        assert pair.pre_offset == (0, 0) and pair.post_offset == (30, 50)
        _, post_v, valid = pair.read(Window(0, 0, 10, 10))
    np.testing.assert_array_equal(post_v, data[:, 30:40, 50:60])
    assert valid.all()


def test_boundless_read_outside_the_grid_is_zero_and_invalid(small_scene):
    with open_pair(small_scene["pre"], small_scene["post"]) as pair:
        pre, post, valid = pair.read(Window(-10, -20, 64, 64))
        assert pre.shape == (3, 64, 64)
        assert not valid[:20].any() and not valid[:, :10].any()
        assert valid[20:, 10:].all()
        assert (pre[:, :20] == 0).all() and (post[:, :, :10] == 0).all()
        np.testing.assert_array_equal(pre[:, 20:, 10:], _read(small_scene["pre"], Window(0, 0, 54, 44)))
        pre, post, valid = pair.read(Window(480, 490, 64, 64))  # beyond right and bottom
        assert valid[:22, :32].all() and not valid[22:].any() and not valid[:, 32:].any()
        assert (post[:, 22:] == 0).all()
        pre, post, valid = pair.read(Window(600, 600, 32, 32))  # entirely outside
        assert not valid.any() and not pre.any() and not post.any()


def test_crs_override(small_scene):
    with rasterio.open(small_scene["pre"]) as ds:
        t, _, _ = calculate_default_transform(ds.crs, "EPSG:3857", ds.width, ds.height, *ds.bounds)
    with open_pair(small_scene["pre"], small_scene["post"], crs="EPSG:3857") as pair:
        g = pair.grid
        assert g.crs == CRS.from_epsg(3857)
        assert g.res == pytest.approx((abs(t.a), abs(t.e)))
        # aligned to whole multiples of the resolution (gdalwarp -tap)
        assert g.transform.c / g.res[0] == pytest.approx(round(g.transform.c / g.res[0]), abs=1e-6)
        assert g.transform.f / g.res[1] == pytest.approx(round(g.transform.f / g.res[1]), abs=1e-6)
        assert pair.warped == {"pre": True, "post": True} and pair.pre_offset is None
        pre, post, valid = pair.read(g.window())
        assert valid.mean() > 0.9
        assert pre[:, valid].mean() == pytest.approx(_read(small_scene["pre"]).mean(), rel=0.03)


def test_resolution_override_and_pre_alignment_kept_for_pre_values(small_scene):
    with rasterio.open(small_scene["pre"]) as ds:
        pre_grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
    with open_pair(small_scene["pre"], small_scene["post"], crs="EPSG:32636", resolution=0.5) as pair:
        assert pair.grid == pre_grid and pair.warped == {"pre": False, "post": False}
    with open_pair(small_scene["pre"], small_scene["post"], resolution=1.0) as pair:
        g = pair.grid
        assert g.crs == pre_grid.crs and g.res == (1.0, 1.0)
        assert (g.width, g.height) == (256, 256)  # the scene's origin is on whole metres
        assert g.transform == Affine(1.0, 0, 637000.0, 0, -1.0, 3486500.0)
        pre, _, valid = pair.read(g.window())
        assert valid.all()
    # each 1 m pixel matches the mean of the 2x2 pre pixels under it
    raw = _read(small_scene["pre"]).astype(np.float32)
    mean2 = raw.reshape(3, 256, 2, 256, 2).mean(axis=(2, 4))
    assert np.abs(pre - mean2)[:, 2:-2, 2:-2].mean() < 6.0


def test_zero_as_nodata(small_scene, tmp_path):
    data = _read(small_scene["pre"])
    data[:, :20, :] = 0  # a black strip, no nodata declared
    data[0, 100, 100] = 0  # one band zero: still a valid pixel
    prof = _profile(small_scene["pre"])
    post = _write(tmp_path / "post_zero.tif", data, crs=prof["crs"], transform=prof["transform"])
    with open_pair(small_scene["pre"], post) as pair:
        assert pair.read(pair.grid.window())[2].all()
    with open_pair(small_scene["pre"], post, zero_as_nodata=True) as pair:
        valid = pair.read(pair.grid.window())[2]
    assert not valid[:20].any() and valid[20:].all()
    # through a warp too: no zeros blended into the edge, the strip stays invalid
    with open_pair(small_scene["pre"], post, zero_as_nodata=True, resolution=1.0) as pair:
        _, post_v, valid = pair.read(pair.grid.window())
    assert not valid[:10].any() and valid[11:].all()
    assert post_v[:, 11:].min() > 0


def test_alpha_band_and_internal_mask_are_respected(small_scene, tmp_path):
    data = _read(small_scene["post"])
    prof = _profile(small_scene["post"])
    geo = dict(crs=prof["crs"], transform=prof["transform"])
    masked = np.full((512, 512), 255, np.uint8)
    masked[200:260, 300:400] = 0
    alpha = _write(tmp_path / "rgba.tif", np.concatenate([data, masked[None]]), photometric="RGB", alpha="YES", **geo)
    with rasterio.open(
        tmp_path / "imask.tif", "w", driver="GTiff", count=3, width=512, height=512, dtype="uint8", **geo
    ) as ds:
        ds.write(data)
        ds.write_mask(masked)
    for post in (alpha, tmp_path / "imask.tif"):
        with open_pair(small_scene["pre"], post) as pair:  # RGBA vs RGB: the alpha is no data band
            _, post_v, valid = pair.read(pair.grid.window())
        np.testing.assert_array_equal(valid, masked > 0)
        assert (post_v[:, ~valid] == 0).all()
        # and through a WarpedVRT (2x coarser grid)
        with open_pair(small_scene["pre"], post, resolution=1.0) as pair:
            assert pair.warped["post"]
            valid = pair.read(pair.grid.window())[2]
        assert not valid[101:129, 151:199].any()
        assert valid[:95].all() and valid[135:].all()


def test_warped_in_area_outside_post_footprint_is_invalid(small_scene, tmp_path):
    # post: a crop of the scene moved onto EPSG:4326, written with NO nodata and no mask, so
    # only the WarpedVRT's alpha can tell where its (rotated) footprint ends on pre's grid
    crop = _copy_window(small_scene["post"], tmp_path / "crop.tif", Window(0, 0, 300, 512))
    with rasterio.open(crop) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        with WarpedVRT(src, crs="EPSG:4326", transform=t, width=w, height=h) as vrt:
            data = vrt.read()
            data[data == 0] = 1  # every pixel of the file is data
            post = _write(tmp_path / "post4326.tif", data, crs=vrt.crs, transform=vrt.transform)
    with open_pair(small_scene["pre"], post) as pair:
        g = pair.grid
        assert g.transform.c == 637000.0 and g.res == (0.5, 0.5) and g.height == 512
        assert 300 < g.width < 312  # the footprint's bounding box, clipped to pre
        valid = pair.read(g.window())[2]
    # where is each grid pixel centre in post's pixels?
    rows, cols = np.mgrid[0 : g.height, 0 : g.width] + 0.5
    xs, ys = g.transform * (cols.ravel(), rows.ravel())
    lon, lat = warp_points(g.crs, "EPSG:4326", xs, ys)
    pc, pr = ~t * (np.asarray(lon), np.asarray(lat))
    pc, pr = pc.reshape(rows.shape), pr.reshape(rows.shape)
    inside = (pc > 1) & (pc < w - 1) & (pr > 1) & (pr < h - 1)
    outside = (pc < -1) | (pc > w + 1) | (pr < -1) | (pr > h + 1)
    assert outside.sum() > 500  # the corners of the bounding box are off the footprint
    assert valid[inside].all()
    assert not valid[outside].any()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_pair_without_any_crs_is_pixel_aligned(tmp_path):
    rng = np.random.default_rng(0)
    a = _write(tmp_path / "a.tif", rng.integers(1, 255, (3, 40, 50), dtype=np.uint8))
    b = _write(tmp_path / "b.tif", rng.integers(1, 255, (3, 40, 50), dtype=np.uint8))
    with open_pair(a, b) as pair:
        assert pair.grid == Grid(None, Affine.identity(), 50, 40)
        pre, post, valid = pair.read(Window(0, 0, 50, 40))
    np.testing.assert_array_equal(post, _read(b))
    assert valid.all()
    c = _write(tmp_path / "c.tif", rng.integers(1, 255, (3, 41, 50), dtype=np.uint8))
    with pytest.raises(InputError, match="sizes differ") as exc:
        open_pair(a, c)
    assert str(c) in str(exc.value)


# ---------------------------------------------------------------------------------------------
# errors


def _assert_input_error(path, *args, match=None, **kwargs):
    with pytest.raises(InputError) as exc:
        open_pair(*args, **kwargs)
    msg = exc.value.render(flag_names(cli))  # as the command line shows it
    assert str(path) in msg and "\n" not in msg
    if match:
        assert match in msg, msg
    return msg


def test_errors_missing_and_not_a_raster(small_scene, tmp_path):
    missing = tmp_path / "nope.tif"
    _assert_input_error(missing, missing, small_scene["post"], match="not found")
    text = tmp_path / "notes.tif"
    text.write_text("hello, not a raster\n")
    _assert_input_error(text, small_scene["pre"], text, match="not a raster GDAL can read")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_error_no_crs_on_one(small_scene, tmp_path):
    bare = _write(tmp_path / "bare.tif", _read(small_scene["post"]))
    msg = _assert_input_error(bare, small_scene["pre"], bare, match="has no CRS")
    assert msg.startswith(str(bare))
    msg = _assert_input_error(bare, bare, small_scene["post"], match="has no CRS")
    assert msg.startswith(str(bare))


def test_error_disjoint_and_subpixel_overlap(small_scene, tmp_path):
    data = _read(small_scene["post"])
    prof = _profile(small_scene["post"])
    far = _write(
        tmp_path / "far.tif",
        data,
        crs=prof["crs"],
        nodata=0,
        transform=prof["transform"] * Affine.translation(10_000, 0),
    )
    _assert_input_error(far, small_scene["pre"], far, match="footprints do not overlap")
    sliver = _write(
        tmp_path / "sliver.tif",
        data,
        crs=prof["crs"],
        nodata=0,
        transform=prof["transform"] * Affine.translation(511.5, 0),
    )
    _assert_input_error(sliver, small_scene["pre"], sliver, match="smaller than one pixel")


def test_error_bands(small_scene, tmp_path):
    msg = _assert_input_error(small_scene["pre"], small_scene["pre"], small_scene["post"], bands=[1, 2, 4])
    assert "has 3 band(s); --bands 1,2,4 asks for band 4" in msg
    msg = _assert_input_error(
        small_scene["post"], small_scene["pre"], small_scene["post"], bands=[1, 2, 3], post_bands=[3, 2, 5]
    )
    assert "--post-bands 3,2,5 asks for band 5" in msg
    prof = _profile(small_scene["pre"])
    geo = dict(crs=prof["crs"], transform=prof["transform"])
    # RGB + NIR (MINISBLACK: GDAL would take a 4th uint8 band of a default GeoTIFF for alpha)
    four = _write(
        tmp_path / "four.tif", np.concatenate([_read(small_scene["pre"])] * 2)[:4], photometric="MINISBLACK", **geo
    )
    msg = _assert_input_error(small_scene["post"], four, small_scene["post"], match="pre has 4 bands, post 3")
    assert "--bands/--post-bands" in msg
    with open_pair(four, small_scene["post"], bands=[3, 2, 1]) as pair:  # a choice resolves it
        assert pair.bands == (3, 2, 1) and pair.post_bands == (3, 2, 1)
        pre, _, _ = pair.read(Window(0, 0, 8, 8))
        np.testing.assert_array_equal(pre, _read(small_scene["pre"], Window(0, 0, 8, 8))[::-1])
    one = _write(tmp_path / "one.tif", _read(small_scene["pre"])[:1], **geo)
    one_b = _write(tmp_path / "one_b.tif", _read(small_scene["post"])[:1], **geo)
    _assert_input_error(one, one, one_b, match="has 1 band(s); the model takes 3")
    _assert_input_error(one, one, one_b, bands=[1, 1], match="selects 2 band(s)")
    with open_pair(one, one_b, bands=[1, 1, 1]) as pair:  # a panchromatic pair, repeated
        assert pair.read(Window(0, 0, 4, 4))[0].shape == (3, 4, 4)


def test_error_complex_dtype(small_scene, tmp_path):
    prof = _profile(small_scene["pre"])
    cplx = _write(
        tmp_path / "cplx.tif",
        _read(small_scene["post"]).astype(np.complex64),
        crs=prof["crs"],
        transform=prof["transform"],
    )
    _assert_input_error(cplx, small_scene["pre"], cplx, match="unsupported data type complex64; convert to real bands")


def test_error_all_nodata(small_scene, tmp_path):
    prof = _profile(small_scene["pre"])
    empty = _write(
        tmp_path / "empty.tif",
        np.zeros((3, 512, 512), np.uint8),
        crs=prof["crs"],
        transform=prof["transform"],
        nodata=0,
    )
    _assert_input_error(empty, small_scene["pre"], empty, match="no valid pixel where both scenes overlap")


def test_error_bad_crs_option(small_scene):
    with pytest.raises(InputError, match="not a CRS"):
        open_pair(small_scene["pre"], small_scene["post"], crs="EPSG:999999")


# ---------------------------------------------------------------------------------------------
# scaling


def test_uint16_percentile_stretch_is_computed_once_per_scene(uint16_pair):
    with open_pair(uint16_pair["pre"], uint16_pair["post"]) as pair:
        assert pair.dtype_in == {"pre": "uint16", "post": "uint16"}
        assert pair.scaling == {"pre": "stretch", "post": "stretch"}
        st = pair.stretch
        pre_a, post_a, valid_a = pair.read(Window(0, 0, 160, 160))
        pre_b, post_b, valid_b = pair.read(Window(96, 96, 160, 160))
        pre_all, post_all, valid = pair.read(pair.grid.window())
        assert pair.stretch == st
    raw = _read(uint16_pair["pre"]).astype(np.float64)
    for b, (lo, hi) in enumerate(st["pre"]):  # 2nd-98th percentile of jointly valid pixels
        assert lo == pytest.approx(np.percentile(raw[b][valid], 2))
        assert hi == pytest.approx(np.percentile(raw[b][valid], 98))
    for arr in (pre_all, post_all):
        v = arr[:, valid]
        assert v.min() == 0.0 and v.max() == 255.0
        assert 0.01 < (v == 0).mean() < 0.05 and 0.01 < (v == 255).mean() < 0.05
    # the overlap of the two windows is scaled identically
    np.testing.assert_array_equal(pre_a[:, 96:, 96:], pre_b[:, :64, :64])
    np.testing.assert_array_equal(post_a[:, 96:, 96:], post_b[:, :64, :64])
    assert not valid[:10].any() and valid[10:-10, 10:-10].all()


def test_normalization_scale_maps_linearly(uint16_pair):
    with open_pair(uint16_pair["pre"], uint16_pair["post"], scale=10000.0) as pair:
        assert pair.scaling == {"pre": "scale", "post": "scale"} and pair.stretch["pre"] is None
        pre, _, valid = pair.read(pair.grid.window())
    raw = _read(uint16_pair["pre"]).astype(np.float32)
    np.testing.assert_allclose(pre, np.clip(raw * 255 / 10000, 0, 255), rtol=1e-6)
    for scale in (255, None):
        with open_pair(uint16_pair["pre"], uint16_pair["post"], scale=scale) as pair:
            assert pair.scaling == {"pre": "stretch", "post": "stretch"}


def test_all_nodata_check_does_not_trust_the_decimated_read_alone(small_scene, tmp_path, monkeypatch):
    import s2m_geo.predict.scene as scene

    monkeypatch.setattr(scene, "COARSE_MAX", 64)  # 512 px -> a 1-in-8 decimated scan
    calls = []
    full_scan = scene.ScenePair._any_valid_full
    monkeypatch.setattr(scene.ScenePair, "_any_valid_full", lambda self, *a: calls.append(1) or full_scan(self, *a))
    prof = _profile(small_scene["pre"])
    data = np.zeros((3, 512, 512), np.uint8)
    data[:, 301, 301] = 77  # one valid pixel, between the decimated samples
    one = _write(tmp_path / "one_pixel.tif", data, crs=prof["crs"], transform=prof["transform"], nodata=0)
    with open_pair(small_scene["pre"], one) as pair:
        assert calls, "the decimated read saw the pixel; pick another one"
        assert pair.read(Window(300, 300, 3, 3))[2].sum() == 1
    data[:] = 0
    none = _write(tmp_path / "no_pixel.tif", data, crs=prof["crs"], transform=prof["transform"], nodata=0)
    _assert_input_error(none, small_scene["pre"], none, match="no valid pixel")


# ---------------------------------------------------------------------------------------------
# threads and pickling


def test_concurrent_reads_equal_sequential_reads(warped_scene):
    warped, _ = warped_scene
    wins = [Window(c, r, 96, 96) for r in range(-16, 384, 80) for c in range(-16, 384, 80)]
    with open_pair(warped["pre"], warped["post"]) as pair:
        seq = [pair.read(w) for w in wins]
        with ThreadPoolExecutor(4) as pool:
            par = list(pool.map(pair.read, wins))
        assert len(pair._all_handles) >= 2  # threads got their own handles
    assert pair.closed and not pair._all_handles
    for s, p in zip(seq, par):
        for a, b in zip(s, p):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="closed"):
        pair.read(wins[0])


def test_pair_pickles_and_reopens(warped_scene):
    warped, _ = warped_scene
    with open_pair(warped["pre"], warped["post"]) as pair:
        a = pair.read(Window(30, 40, 50, 60))
        clone = pickle.loads(pickle.dumps(pair))
    with clone:
        b = clone.read(Window(30, 40, 50, 60))
        assert clone.grid == pair.grid
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# real data


@pytest.mark.realdata
def test_real_rgb_byte_paired_with_itself(realdata):
    path = realdata / "rasterio-rgb-byte" / "RGB.byte.tif"
    with rasterio.open(path) as ds:
        raw, mask = ds.read(), ds.dataset_mask() > 0
        grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
    with open_pair(path, path) as pair:
        assert pair.grid == grid
        pre, post, valid = pair.read(Window(-5, -5, grid.width + 10, grid.height + 10))
    core = (slice(None), slice(5, -5), slice(5, -5))
    np.testing.assert_array_equal(valid[5:-5, 5:-5], mask)
    assert 0.6 < mask.mean() < 0.75  # the nodata collar
    np.testing.assert_array_equal(pre[core], raw)
    np.testing.assert_array_equal(post[core], raw)


def _stack(paths, dst):
    arrays, prof = [], None
    for p in paths:
        with rasterio.open(p) as ds:
            arrays.append(ds.read(1))
            prof = prof or dict(crs=ds.crs, transform=ds.transform, nodata=ds.nodata)
    return _write(dst, np.stack(arrays), **prof)


@pytest.mark.realdata
def test_real_landsat5_uint8_pair(realdata, tmp_path):
    root = realdata / "debian-r-cran-satellite-landsat5"
    pre = _stack([next((root / "LT05_20000309").glob(f"*_B{b}.TIF")) for b in (3, 2, 1)], tmp_path / "pre.tif")
    post = _stack([next((root / "LT5_20101218").glob(f"*_B{b}.tif")) for b in (3, 2, 1)], tmp_path / "post.tif")
    with open_pair(pre, post) as pair:
        assert (pair.grid.width, pair.grid.height) == (101, 101)
        assert pair.grid.crs.to_epsg() == 32637 and pair.warped == {"pre": False, "post": False}
        assert pair.scaling == {"pre": "uint8", "post": "uint8"}
        p, q, valid = pair.read(pair.grid.window())
    np.testing.assert_array_equal(p, _read(pre))
    np.testing.assert_array_equal(q, _read(post))
    assert valid.all()


@pytest.mark.realdata
def test_real_landsat8_int16_pair(realdata, tmp_path):
    root = realdata / "cold-springs-fire-landsat8"
    pre = _stack(
        [next((root / "pre_20160707").glob(f"*_sr_band{b}_crop.tif")) for b in (4, 3, 2)], tmp_path / "pre.tif"
    )
    post = _stack(
        [next((root / "post_20160723").glob(f"*_sr_band{b}_crop.tif")) for b in (4, 3, 2)], tmp_path / "post.tif"
    )
    raw = _read(pre).astype(np.float32)
    with open_pair(pre, post) as pair:
        assert (pair.grid.width, pair.grid.height) == (246, 177)
        assert pair.dtype_in == {"pre": "int16", "post": "int16"}
        assert pair.scaling["pre"] == "stretch"
        p, q, valid = pair.read(pair.grid.window())
        (lo, hi) = pair.stretch["pre"][0]
    assert valid.mean() > 0.95
    assert lo == pytest.approx(np.percentile(raw[0][valid], 2))
    assert hi == pytest.approx(np.percentile(raw[0][valid], 98))
    assert 0 <= p.min() and p.max() == 255 and 0 <= q.min() and q.max() == 255
    with open_pair(pre, post, scale=10000.0) as pair:  # surface reflectance x 10000
        p, _, valid = pair.read(pair.grid.window())
    np.testing.assert_allclose(p[:, valid], np.clip(raw * 255 / 10000, 0, 255)[:, valid], rtol=1e-6)


def test_alpha_counts_too_when_a_nodata_value_is_declared(small_scene, tmp_path):
    """Rule 5: GDAL's masks follow a declared nodata value and ignore the alpha band; an
    RGBA scene whose alpha is 0 on data that is not the nodata value is still invalid there."""
    prof = _profile(small_scene["pre"])
    rgb = _read(small_scene["pre"])
    alpha = np.full((1, *rgb.shape[1:]), 255, np.uint8)
    alpha[:, :, :200] = 0  # transparent, over pixels that are not 0
    rgba = _write(
        tmp_path / "rgba.tif",
        np.concatenate([rgb, alpha]),
        crs=prof["crs"],
        transform=prof["transform"],
        nodata=0,
        photometric="RGB",
        alpha="YES",
    )
    with rasterio.open(rgba) as ds:
        assert ds.colorinterp[3].name == "alpha" and ds.nodata == 0
    with open_pair(small_scene["pre"], rgba) as pair:
        _, _, valid = pair.read(pair.grid.window())
    nonzero = (rgb != 0).any(0)
    assert not valid[:, :200].any()
    np.testing.assert_array_equal(valid[:, 200:], nonzero[:, 200:])


def test_world_files_that_disagree_are_not_taken_as_aligned(small_scene, tmp_path):
    """Rule 5: two scenes without CRS whose georeference (e.g. world files) differ are not
    compared pixel by pixel in silence."""
    data = _read(small_scene["pre"])
    a = _write(tmp_path / "a.tif", data, transform=Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0))
    b = _write(tmp_path / "b.tif", data, transform=Affine(0.5, 0, 1050.0, 0, -0.5, 2000.0))
    msg = _assert_input_error(b, a, b)
    assert "places it 100 px east, 0 px south of" in msg and "gdal_edit.py -a_srs" in msg
    same = _write(tmp_path / "c.tif", data, transform=Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0))
    with open_pair(a, same) as pair:  # the same georeference: aligned, as before
        assert pair.grid.crs is None


def _framed(tmp_path, name, data, size, at, nodata, **kw):
    """``data`` (C,h,w) placed at ``at`` (row, col) in a ``size`` x ``size`` raster of nodata."""
    c, h, w = data.shape
    full = np.full((c, size, size), nodata, data.dtype)
    full[:, at[0] : at[0] + h, at[1] : at[1] + w] = data
    t = Affine(0.5, 0, 637000.0, 0, -0.5, 3486500.0)
    return _write(tmp_path / name, full, crs=CRS.from_epsg(32636), transform=t, nodata=nodata, **kw)


@pytest.mark.parametrize("dtype, nodata", [("uint8", 0), ("uint16", 65535), ("uint16", 0)])
def test_coverage_never_misses_a_valid_pixel(tmp_path, dtype, nodata):
    """The coarse map a run skips tiles by is conservative: any window holding a jointly valid
    pixel is 'may hold'; windows in the nodata frame are not (so they are never read)."""
    rng = np.random.default_rng(1)
    data = rng.integers(1, 250, (3, 40, 30)).astype(dtype)
    data[:, 5, 7] = nodata  # a nodata pixel inside the valid area
    pre = _framed(tmp_path, "pre.tif", data, 3000, (1500, 2100), nodata)
    lone = np.full((3, 1, 1), 9, dtype)
    post = _framed(tmp_path, "post.tif", data, 3000, (1500, 2100), nodata)
    with open_pair(pre, post) as pair:
        cov = pair.coverage()
        assert cov.cells is not None and cov.cells.shape == (1500, 1500)
        for _ in range(300):
            size = int(rng.integers(1, 300))
            r, c = (int(v) for v in rng.integers(-size, 3000, 2))
            window = Window(c, r, size, size)
            if pair.read_valid(window).any():
                assert cov.may_hold(window), window
        assert cov.may_hold(Window(2100, 1500, 1, 1))
        assert not cov.may_hold(Window(0, 0, 256, 256)) and not cov.may_hold(Window(2700, 2700, 256, 256))
    # a single valid pixel in a large frame is still found
    one = _framed(tmp_path, "one.tif", lone, 3000, (2999, 17), nodata)
    with open_pair(one, one) as pair:
        assert pair.coverage().may_hold(Window(0, 2900, 64, 100))


def test_coverage_is_everywhere_when_it_cannot_be_known_cheaply(small_scene, tmp_path):
    with open_pair(small_scene["pre"], small_scene["post"]) as pair:  # no nodata: all valid
        assert pair.coverage().cells is None  # everywhere: the scan found every sample valid
        assert pair.coverage().may_hold(Window(0, 0, 1, 1))
    data = _read(small_scene["pre"]).astype(np.int16) - 100
    signed = _framed(tmp_path, "s.tif", data, 600, (0, 0), 0)  # a signed type: averages could hit 0
    with open_pair(signed, signed) as pair:
        assert pair.coverage().cells is None and pair.coverage().may_hold(Window(590, 590, 5, 5))


def test_vrt_source_rects_are_the_dst_rects_or_unknown():
    from s2m_geo.predict.scene import vrt_source_rects

    def vrt(band: str, extra: str = "") -> str:
        return f'<VRTDataset rasterXSize="100" rasterYSize="80">{extra}{band}</VRTDataset>'

    src = '<SimpleSource><DstRect xOff="{}" yOff="{}" xSize="{}" ySize="{}"/></SimpleSource>'
    band = (
        '<VRTRasterBand band="1"><NoDataValue>0</NoDataValue>'
        + src.format(10.5, 5, 20, 10)
        + src.format(90, 70, 50, 50)  # clipped to the raster
        + src.format(200, 0, 5, 5)  # outside it: nothing
        + "</VRTRasterBand>"
    )
    assert vrt_source_rects(vrt(band), [1], 100, 80) == ((10, 5, 21, 10), (90, 70, 10, 10))
    assert vrt_source_rects(vrt(band), [2], 100, 80) is None  # no such band
    bare = band.replace("<NoDataValue>0</NoDataValue>", "")
    assert vrt_source_rects(vrt(bare), [1], 100, 80) is None  # outside the sources reads a valid 0
    assert vrt_source_rects(vrt(bare), [1], 100, 80, zero_invalid=True) is not None
    hidden = band.replace("</NoDataValue>", "</NoDataValue><HideNoDataValue>1</HideNoDataValue>")
    assert vrt_source_rects(vrt(hidden), [1], 100, 80) is None  # GDAL reads no nodata: the 0s are data
    assert vrt_source_rects(vrt(band, "<MaskBand/>"), [1], 100, 80) is None
    assert vrt_source_rects(vrt(band.replace("SimpleSource", "ThingSource")), [1], 100, 80) is None
    assert (
        vrt_source_rects(vrt(band.replace('band="1"', 'band="1" subClass="VRTDerivedRasterBand"')), [1], 100, 80)
        is None
    )
    assert vrt_source_rects("not xml", [1], 100, 80) is None


def test_a_sparse_mosaic_is_scanned_only_where_its_sources_are(tmp_path, monkeypatch):
    """A 20000² VRT holding two 256² scenes: the scan reads near them only, and the coverage
    map skips the frame, without a pixel of it read."""
    import s2m_geo.predict.scene as sc
    from s2m_geo.testing import mosaic_vrt

    scene = write_scene(tmp_path / "s", SceneSpec(size=256, seed=3))
    at = [(5000, 7000), (15000, 300)]
    vrts = {k: mosaic_vrt([(scene[k], r, c) for r, c in at], tmp_path / f"{k}.vrt", 20000) for k in ("pre", "post")}
    read, factors = [], []
    original = sc.ScenePair._read_coarse
    monkeypatch.setattr(
        sc.ScenePair,
        "_read_coarse",
        lambda self, ep, window, factor: (
            read.append(window) or factors.append(factor) or original(self, ep, window, factor)
        ),
    )
    with open_pair(vrts["pre"], vrts["post"]) as pair:
        sources = [Window(c, r, 256, 256) for r, c in at]
        assert sorted(pair.regions(), key=lambda w: w.row_off) == sources
        assert read and all(w in sources for w in read)
        # a valid sample of the sparse probe settles it: the footprints are not decoded once more
        assert factors == [sc.probe_factor(256, 256)] * 2
        cov = pair.coverage()
        assert all(cov.may_hold(w) for w in sources)
        assert not cov.may_hold(Window(0, 0, 4000, 4000)) and not cov.may_hold(Window(12000, 12000, 512, 512))
        # what is read there is what the scenes hold
        pre, post, valid = pair.read(sources[0])
        with rasterio.open(scene["pre"]) as ds:
            np.testing.assert_array_equal(pre, ds.read().astype(np.float32) * valid)


def test_a_long_mosaic_may_hold_one_scene_twice(tmp_path):
    """``mosaic_vrt`` with a height: a wide strip (as a Gaza mosaic is) holding the same scene
    at two places; both read as that scene, the frame as nodata."""
    from s2m_geo.testing import mosaic_vrt

    scene = write_scene(tmp_path / "s", SceneSpec(size=128, seed=4))
    at = [(700, 100), (0, 2500)]
    vrt = mosaic_vrt([(scene["pre"], r, c) for r, c in at], tmp_path / "pre.vrt", 3000, 900)
    with rasterio.open(vrt) as ds, rasterio.open(scene["pre"]) as one:
        assert (ds.width, ds.height) == (3000, 900)
        assert ds.transform * (100, 700) == pytest.approx(one.transform * (0, 0))
        for r, c in at:
            np.testing.assert_array_equal(ds.read(window=Window(c, r, 128, 128)), one.read())
        assert not ds.read(window=Window(1000, 300, 512, 512)).any()
    with open_pair(vrt, vrt) as pair:
        assert sorted(pair.regions(), key=lambda w: w.col_off) == [Window(c, r, 128, 128) for r, c in at]


def test_a_mosaic_whose_probe_misses_its_few_valid_pixels_is_scanned_then_refused_if_empty(tmp_path):
    """The probe of a mosaic's footprints proves it holds a valid pixel; where it finds none,
    the footprints are scanned as before: a few valid pixels between the samples are found,
    and a footprint of nodata alone is refused."""
    from s2m_geo.testing import mosaic_vrt

    data = np.zeros((3, 256, 256), np.uint8)
    data[:, 100:110, 100:110] = 77  # between the probe's samples
    sparse = _write(tmp_path / "few.tif", data, nodata=0, crs="EPSG:32636", transform=Affine(1, 0, 5e5, 0, -1, 3.5e6))
    empty = _write(
        tmp_path / "none.tif", data * 0, nodata=0, crs="EPSG:32636", transform=Affine(1, 0, 5e5, 0, -1, 3.5e6)
    )
    few = mosaic_vrt([(sparse, 3000, 2000)], tmp_path / "few.vrt", 6000)
    none = mosaic_vrt([(empty, 3000, 2000)], tmp_path / "none.vrt", 6000)
    with open_pair(few, few) as pair:
        assert pair.read_valid(Window(2100, 3100, 10, 10)).all()
    _assert_input_error(none, none, none, match="no valid pixel where both scenes overlap")


def test_a_warped_mosaic_declares_its_sources_on_the_grid(tmp_path):
    """Post shifted by half a pixel is warped onto pre's grid: its sources' rectangles are
    carried onto the grid (a pixel of margin for bilinear), and the frame is still skipped."""
    from s2m_geo.testing import mosaic_vrt

    scene = write_scene(tmp_path / "s", SceneSpec(size=256, seed=3))
    pre = mosaic_vrt([(scene["pre"], 3000, 4000)], tmp_path / "pre.vrt", 10000)
    post = mosaic_vrt([(scene["post"], 3000, 4000)], tmp_path / "post.vrt", 10000)
    with rasterio.open(post) as ds:
        t = ds.transform
    text = post.read_text(encoding="utf-8")
    shifted = f"{t.c + 0.5 * t.a!r}, {t.a!r}, 0.0, {t.f!r}, 0.0, {t.e!r}"
    post.write_text(text.replace(", ".join(map(repr, (t.c, t.a, 0.0, t.f, 0.0, t.e))), shifted), encoding="utf-8")
    with open_pair(pre, post) as pair:
        assert pair.warped == {"pre": False, "post": True}
        (region,) = pair.regions()
        inside = Window(4001, 3000, 255, 256)  # post covers these pre pixels wholly
        assert region.col_off <= inside.col_off and region.row_off <= inside.row_off
        assert region.col_off + region.width >= 4256 and region.height <= 256 + 2
        assert not pair.coverage().may_hold(Window(0, 0, 2000, 2000))
        assert pair.read_valid(inside).all()


def test_the_probe_samples_a_few_blocks_at_most():
    from s2m_geo.predict.scene import PROBE_SIDE, PROBE_SPACING, probe_factor

    assert probe_factor(600, 600) == 300  # two samples along the side
    assert probe_factor(4288, 4288) == 1072  # 4 x 4 samples: 16 of 289 blocks of 256²
    assert probe_factor(100_000, 24_000) == 6250  # PROBE_SIDE along the long side
    for side in (1, 31, 1000, 2048, 4096, 8192, 16_384, 80_000):
        samples = -(-side // probe_factor(side, side))
        assert 1 <= samples <= PROBE_SIDE and (samples <= 2 or side / samples >= PROBE_SPACING)


def test_a_pair_valid_wherever_probed_is_not_scanned_whole(tmp_path, monkeypatch):
    """A uint8 pair whose sparse probe finds every sample valid needs no stretch and is not all
    nodata: the whole-grid scan (a decimated read that decodes every block of both scenes,
    once more than the tiles do) is skipped. A frame of nodata the probe missed is then found
    tile by tile: the same valid pixels, nothing refused."""
    from s2m_geo.predict import scene as scene_mod

    rng = np.random.default_rng(4)
    data = rng.integers(1, 250, (3, 600, 600)).astype(np.uint8)
    data[:, :, -15:] = 0  # a thin frame of nodata beyond the probe's last column (post: its first)
    pre = _write(tmp_path / "pre.tif", data, nodata=0, tiled=True, blockxsize=64, blockysize=64)
    post = _write(tmp_path / "post.tif", data[:, :, ::-1].copy(), nodata=0, tiled=True, blockxsize=64, blockysize=64)
    factors: list[int] = []
    real = scene_mod.ScenePair._read_coarse

    def spy(self, ep, window, factor):
        factors.append(factor)
        return real(self, ep, window, factor)

    monkeypatch.setattr(scene_mod.ScenePair, "_read_coarse", spy)
    with open_pair(pre, post) as pair:
        probe = scene_mod.probe_factor(600, 600)
        assert factors == [probe, probe]  # the probe of both epochs, nothing else
        assert pair.coverage().cells is None
        valid = pair.read_valid(Window(0, 0, 600, 600))
        assert not valid[:, :15].any() and not valid[:, -15:].any() and valid[:, 15:-15].all()
    factors.clear()
    stretched = _write(tmp_path / "u16.tif", data.astype(np.uint16) * 200, nodata=0)  # needs a stretch: scanned
    with open_pair(stretched, stretched):
        assert factors[-2:] == [coarse_shape(600, 600, scene_mod.COARSE_MAX)[0]] * 2


def test_a_vrt_that_hides_its_nodata_value_is_valid_outside_its_sources(tmp_path):
    """<HideNoDataValue>: GDAL reports no nodata, so the zeros outside the sources are data,
    predicted like any other pixel, never skipped as a nodata frame."""
    from s2m_geo.testing import mosaic_vrt

    data = np.random.default_rng(5).integers(1, 250, (3, 10, 10)).astype(np.uint8)
    src = _write(tmp_path / "s.tif", data, crs="EPSG:32636", transform=Affine(1, 0, 500000, 0, -1, 3500000))
    vrt = mosaic_vrt([(src, 0, 0)], tmp_path / "m.vrt", 40)
    text = vrt.read_text().replace("</NoDataValue>", "</NoDataValue><HideNoDataValue>1</HideNoDataValue>")
    vrt.write_text(text)
    with rasterio.open(vrt) as ds:
        assert ds.nodata is None
    with open_pair(vrt, vrt) as pair:
        assert pair.regions() is None
        assert pair.coverage().may_hold(Window(20, 20, 10, 10))
        assert pair.read_valid(Window(20, 20, 10, 10)).all()


def _looked_at(cells, height, width, r, c, h, w):
    """Whether the cells a window touches (a cell of margin) hold a True: one window's answer."""
    ch, cw = cells.shape
    r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + h, height), min(c + w, width)
    if r0 >= r1 or c0 >= c1:
        return False
    i0, i1 = max(r0 * ch // height - 1, 0), min(-(-r1 * ch // height) + 1, ch)
    j0, j1 = max(c0 * cw // width - 1, 0), min(-(-c1 * cw // width) + 1, cw)
    return bool(cells[i0:i1, j0:j1].any())


def test_coverage_answers_many_windows_at_once_as_one_by_one():
    """``may_hold_rects`` (running sums, no loop) says of every window what looking at the
    cells it touches says, margins at the cells' edges and windows past the grid included."""
    from s2m_geo.predict.scene import Coverage

    rng = np.random.default_rng(11)
    for height, width in ((1000, 700), (37, 5000), (4096, 4096)):
        cells = rng.random(tuple(rng.integers(3, 60, 2))) < 0.05
        cov = Coverage(height, width, cells)
        rows, cols = rng.integers(-50, height, 500), rng.integers(-50, width, 500)
        rects = np.column_stack([rows, cols, rng.integers(1, 300, 500), rng.integers(1, 300, 500)])
        want = [_looked_at(cells, height, width, *rect) for rect in rects.tolist()]
        assert cov.may_hold_rects(rects).tolist() == want
        assert [cov.may_hold(Window(c, r, w, h)) for r, c, h, w in rects.tolist()] == want
        everywhere = Coverage(height, width, None).may_hold_rects(rects).tolist()
        assert everywhere == [_looked_at(np.ones((1, 1), bool), height, width, *rect) for rect in rects.tolist()]
