import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.warp import transform_bounds
from scipy import ndimage

from s2m_geo.classes import load_class_table
from s2m_geo.synthetic import SceneSpec, render_block, write_scene


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def test_default_scene_is_georeferenced_over_gaza(small_scene):
    for name in ("pre", "post", "label"):
        with rasterio.open(small_scene[name]) as ds:
            assert ds.crs.to_epsg() == 32636
            assert ds.res == (0.5, 0.5)
            assert ds.transform.c == 637000.0 and ds.transform.f == 3486500.0
            assert ds.width == ds.height == 512
            assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
            west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
            # the Gaza Strip lies within 34.2-34.6 E, 31.2-31.6 N
            assert 34.2 < west < east < 34.6 and 31.2 < south < north < 31.6
            if name == "label":
                assert ds.count == 1 and ds.dtypes[0] == "uint8"
                assert ds.colormap(1)[1] == (0xE3, 0x1A, 0x1C, 255)
            else:
                assert ds.count == 3 and ds.dtypes == ("uint8",) * 3 and ds.nodata == 0


def test_same_seed_same_files_other_seed_different(tmp_path):
    a = write_scene(tmp_path / "a", SceneSpec(size=300, seed=5))
    b = write_scene(tmp_path / "b", SceneSpec(size=300, seed=5))
    c = write_scene(tmp_path / "c", SceneSpec(size=300, seed=6))
    for k in ("pre", "post", "label"):
        assert a[k].read_bytes() == b[k].read_bytes()
        assert not np.array_equal(_read(a[k]), _read(c[k]))


def test_every_change_class_in_a_default_scene(tmp_path):
    paths = write_scene(tmp_path, SceneSpec())  # the default 1536x1536 sample scene
    label = _read(paths["label"])[0]
    present = set(np.unique(label).tolist())
    assert present == set(range(load_class_table().num_classes))
    # change is a minority of pixels, as in real damage maps
    assert 0.05 < (label > 0).mean() < 0.5


def test_block_split_does_not_change_pixels():
    whole = render_block(3, 100, 200, 300, 260)
    parts = [render_block(3, 100 + r, 200 + c, 150, 130) for r in (0, 150) for c in (0, 130)]
    for k in range(3):
        top = np.concatenate([parts[0][k], parts[1][k]], axis=-1)
        bottom = np.concatenate([parts[2][k], parts[3][k]], axis=-1)
        assert np.array_equal(whole[k], np.concatenate([top, bottom], axis=-2))


def test_label_is_zero_wherever_only_pseudo_changes_were_applied():
    pre, post, label = render_block(0, 0, 0, 1024, 1024)
    pre0, post0, label0 = render_block(0, 0, 0, 1024, 1024, changes=False)
    assert label0.max() == 0  # pseudo-changes alone are never labelled
    assert np.array_equal(pre, pre0)  # the same place before
    # the pseudo-changes are real: post differs from pre everywhere a little, and a lot
    # in places (ploughed fields, repainted roofs, shadows)
    diff = np.abs(post0.astype(int) - pre0.astype(int)).max(axis=0)
    assert np.mean(diff > 0) > 0.9 and np.mean(diff > 40) > 0.03
    # a real change appears only in labelled pixels (and their shadows and debris, a few
    # pixels around them)
    near_change = ndimage.binary_dilation(label > 0, np.ones((3, 3), bool), iterations=7)
    same = np.all(post == post0, axis=0)
    assert same[~near_change].all()
    assert not same[label > 0].all()


def test_post_on_another_crs_and_gsd_overlaps_pre(tmp_path):
    paths = write_scene(tmp_path, SceneSpec(size=400, post_crs="EPSG:4326", post_gsd=0.7))
    with rasterio.open(paths["pre"]) as pre, rasterio.open(paths["post"]) as post:
        assert post.crs.to_epsg() == 4326
        pre_b = transform_bounds(pre.crs, "EPSG:4326", *pre.bounds)
        post_b = post.bounds
        overlap = (min(pre_b[2], post_b.right) - max(pre_b[0], post_b.left)) * (
            min(pre_b[3], post_b.top) - max(pre_b[1], post_b.bottom)
        )
        area = (pre_b[2] - pre_b[0]) * (pre_b[3] - pre_b[1])
        assert overlap / area > 0.98
        # about 0.7 m pixels: 200 m of scene in ~286 pixels
        to_utm = Transformer.from_crs(4326, 32636, always_xy=True)
        x0, _ = to_utm.transform(post_b.left, (post_b.top + post_b.bottom) / 2)
        x1, _ = to_utm.transform(post_b.right, (post_b.top + post_b.bottom) / 2)
        assert (x1 - x0) / post.width == pytest.approx(0.7, rel=0.03)
        data = post.read()
        assert (data > 0).any(axis=0).mean() > 0.6  # real imagery, nodata only at the rotated edges


def test_nodata_border(tmp_path):
    paths = write_scene(tmp_path, SceneSpec(size=200, nodata_border=16))
    post, pre, label = _read(paths["post"]), _read(paths["pre"]), _read(paths["label"])[0]
    assert (post[:, :16] == 0).all() and (post[:, -16:] == 0).all() and (post[:, :, :16] == 0).all()
    assert (post[:, 16:-16, 16:-16] > 0).all()
    assert (pre > 0).all()
    assert (label[:16] == 0).all()


def test_interrupted_write_leaves_nothing(tmp_path):
    calls = []

    def boom(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_scene(tmp_path, SceneSpec(size=1100), progress=boom)
    assert calls and list(tmp_path.iterdir()) == []
