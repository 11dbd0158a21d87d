"""predict: georeference, alignment, nodata, seams, small scenes, real rasters, Dask."""

import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from s2m_geo.classes import NODATA_CLASS
from s2m_geo.predict.pipeline import PredictOptions, predict
from s2m_geo.synthetic import SceneSpec, write_scene
from s2m_geo.testing import BrightBandModel, cli_command
from s2m_geo.testing import tiny_model as make_tiny_model


def _read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band), ds


def test_georeference_is_exact_with_an_echo_model(tmp_path, small_scene):
    out = tmp_path / "changes.tif"
    res = predict(
        small_scene["pre"], small_scene["post"], out, BrightBandModel(), PredictOptions(batch_size=3, block_tiles=2)
    )
    with rasterio.open(out) as ds, rasterio.open(small_scene["pre"]) as pre:
        assert ds.crs == pre.crs and ds.transform == pre.transform and ds.shape == pre.shape
        assert ds.nodata == NODATA_CLASS and ds.colormap(1)[1][:3] == (0xE3, 0x1A, 0x1C)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        got = ds.read(1)
        expect = (pre.read(1) > 150).astype(np.uint8)
    assert np.array_equal(got, expect)
    assert res.tiles > 0 and res.class_counts[1] == int(expect.sum())


def test_the_raster_gets_a_qgis_style_with_no_change_transparent(tmp_path, small_scene):
    """NAME.qml beside NAME.tif (QGIS applies it by itself): paletted, one entry per class of
    the table with its legend label, class 0 transparent, no entry for nodata 255."""
    import xml.etree.ElementTree as ET

    from s2m_geo.classes import load_class_table
    from s2m_geo.predict.style import style_path

    out = tmp_path / "changes.tif"
    predict(small_scene["pre"], small_scene["post"], out, BrightBandModel())
    qml = style_path(out)
    assert qml == tmp_path / "changes.qml" and qml.is_file()
    renderer = ET.fromstring(qml.read_text(encoding="utf-8")).find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [e.attrib for e in renderer.findall("colorPalette/paletteEntry")]
    table = load_class_table()
    assert [int(e["value"]) for e in entries] == [c.id for c in table] and NODATA_CLASS not in table
    assert entries[0] == {"value": "0", "color": "#000000", "alpha": "0", "label": "no change"}
    for e, c in zip(entries[1:], table.change_classes):
        assert (e["color"], e["alpha"], e["label"]) == (c.color, "255", c.label)
    assert entries[1]["label"] == "destroyed building"


def test_post_in_another_crs_and_gsd_aligns_onto_pre(tmp_path):
    same = write_scene(tmp_path / "same", SceneSpec(size=256, seed=4))
    other = write_scene(tmp_path / "other", SceneSpec(size=256, seed=4, post_crs="EPSG:4326", post_gsd=0.6))
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    predict(same["pre"], same["post"], a, BrightBandModel("post"))
    predict(other["pre"], other["post"], b, BrightBandModel("post"))
    ra, ds = _read(a)
    rb, db = _read(b)
    assert db.crs == ds.crs and db.transform == ds.transform
    both = (ra != NODATA_CLASS) & (rb != NODATA_CLASS)
    assert both.mean() > 0.9
    assert (ra[both] == rb[both]).mean() > 0.97  # resampled twice, yet on the same pixels


def test_nodata_collar_yields_no_change(tmp_path, tiny_model):
    scene = write_scene(tmp_path / "s", SceneSpec(size=200, nodata_border=20))
    out = tmp_path / "c.tif"
    predict(scene["pre"], scene["post"], out, tiny_model)
    c, _ = _read(out)
    assert (c[:20] == NODATA_CLASS).all() and (c[:, -20:] == NODATA_CLASS).all()
    assert (c[20:-20, 20:-20] != NODATA_CLASS).all()


def test_the_packages_bands_are_the_default(tmp_path, small_scene):
    """A package that records bands 3,2,1 is fed 3,2,1; --bands overrides it explicitly."""
    rgb = make_tiny_model(tmp_path / "rgb.safetensors")
    bgr = make_tiny_model(tmp_path / "bgr.safetensors", bands={"pre": [3, 2, 1], "post": [3, 2, 1]})  # same weights

    def probabilities(model, **opts):
        out = tmp_path / f"p{len(list(tmp_path.glob('p*.tif')))}.tif"
        predict(
            small_scene["pre"],
            small_scene["post"],
            tmp_path / "c.tif",
            model,
            PredictOptions(**opts),
            probabilities=out,
            overwrite=True,
        )
        with rasterio.open(out) as ds:
            return ds.read()

    as_recorded = probabilities(bgr)
    np.testing.assert_array_equal(as_recorded, probabilities(rgb, bands=[3, 2, 1]))
    np.testing.assert_array_equal(probabilities(bgr, bands=[1, 2, 3]), probabilities(rgb))
    assert not np.array_equal(as_recorded, probabilities(rgb))


def test_no_seams_one_block_equals_many_blocks(tmp_path, tiny_model, small_scene):
    one, many = tmp_path / "one.tif", tmp_path / "many.tif"
    p1, p2 = tmp_path / "p1.tif", tmp_path / "p2.tif"
    predict(
        small_scene["pre"],
        small_scene["post"],
        one,
        tiny_model,
        PredictOptions(block_tiles=1000, batch_size=5),
        probabilities=p1,
    )
    predict(
        small_scene["pre"],
        small_scene["post"],
        many,
        tiny_model,
        PredictOptions(block_tiles=1, batch_size=2, read_threads=3),  # and more readers than the default
        probabilities=p2,
    )
    assert np.array_equal(_read(one)[0], _read(many)[0])
    with rasterio.open(p1) as a, rasterio.open(p2) as b:
        assert a.count == 7 and np.array_equal(a.read(), b.read())


@pytest.mark.parametrize("size", [40, 64, 100, 131])
def test_scenes_smaller_than_a_tile_or_not_a_multiple(tmp_path, tiny_model, size):
    scene = write_scene(tmp_path / "s", SceneSpec(size=size))
    out = tmp_path / "c.tif"
    predict(scene["pre"], scene["post"], out, tiny_model)
    c, ds = _read(out)
    assert c.shape == (size, size) and (c != NODATA_CLASS).all() and c.max() < 7


def test_existing_output_and_interrupt_leave_nothing_half_written(tmp_path, tiny_model, small_scene):
    out = tmp_path / "c.tif"
    out.write_bytes(b"keep me")
    from s2m_geo.errors import InputError

    with pytest.raises(InputError, match="already exists"):
        predict(small_scene["pre"], small_scene["post"], out, tiny_model)
    assert out.read_bytes() == b"keep me"

    def stop(stage, done, total):
        if stage == "infer" and done > 2:
            raise KeyboardInterrupt

    fresh = tmp_path / "fresh.tif"
    with pytest.raises(KeyboardInterrupt):
        predict(small_scene["pre"], small_scene["post"], fresh, tiny_model, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]


@pytest.mark.integration
def test_dask_cluster_gives_the_same_raster(tmp_path, tiny_model, small_scene):
    from distributed import Client, LocalCluster

    local, dist = tmp_path / "local.tif", tmp_path / "dist.tif"
    opts = PredictOptions(block_tiles=2)
    predict(small_scene["pre"], small_scene["post"], local, tiny_model, opts)
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        predict(small_scene["pre"], small_scene["post"], dist, tiny_model, opts, client=client)
    assert np.array_equal(_read(local)[0], _read(dist)[0])


@pytest.mark.integration
def test_cli_predict(tmp_path, tiny_model, small_scene):
    out = tmp_path / "out dir é" / "changes.tif"
    out.parent.mkdir()
    cmd = cli_command(
        "predict", small_scene["pre"], small_scene["post"], "-o", out, "--model", tiny_model, "--progress", "json"
    )
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"stage": "infer"' in proc.stderr and out.exists()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    missing = subprocess.run(
        cmd[:4] + [str(tmp_path / "nope.tif")] + cmd[5:] + ["--overwrite"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "nope.tif" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_realdata_rgb_byte_with_itself(tmp_path, realdata, tiny_model):
    src = realdata / "rasterio-rgb-byte" / "RGB.byte.tif"
    if not src.exists():
        pytest.skip("RGB.byte.tif not in realdata")
    out = tmp_path / "c.tif"
    predict(src, src, out, BrightBandModel(threshold=-1), PredictOptions(batch_size=8, block_tiles=8))
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert o.transform == s.transform and o.crs == s.crs
        valid = s.dataset_mask() > 0
        c = o.read(1)
    assert np.array_equal(c != NODATA_CLASS, valid)  # the nodata collar is respected


def test_realdata_pan_scene_paired_with_a_copy_of_itself_shows_no_change(tmp_path, realdata):
    """Two copies of a real uint16 PAN scene, the default model: no change, run after run.
    With GDAL_NUM_THREADS=ALL_CPUS set for the run, reads beside the read-ahead threads came
    back corrupted and a different number of pixels changed on every run."""
    from s2m_geo.predict.runners import default_model_path

    src = realdata / "solaris-spacenet-sample" / "sample_geotiff.tif"
    if not src.exists():
        pytest.skip("sample_geotiff.tif not in realdata")
    pre, post = tmp_path / "pre.tif", tmp_path / "post.tif"
    pre.write_bytes(src.read_bytes())
    post.write_bytes(src.read_bytes())
    for run in range(2):
        out = tmp_path / f"c{run}.tif"
        predict(pre, post, out, default_model_path(), PredictOptions(bands=[1, 1, 1]))
        with rasterio.open(out) as o:
            c = o.read(1)
        assert np.isin(c, (0, NODATA_CLASS)).all(), (
            f"run {run}: {int(np.isin(c, (0, NODATA_CLASS), invert=True).sum())} px changed"
        )


def _stack(files, out):
    arrays = []
    for f in files:
        with rasterio.open(f) as ds:
            arrays.append(ds.read(1))
            profile = ds.profile
    profile.update(count=len(arrays), driver="GTiff")
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(np.stack(arrays))
    return out


def test_realdata_landsat8_int16_pair_smaller_than_a_tile(tmp_path, realdata):
    from s2m_geo.testing import tiny_model

    root = realdata / "cold-springs-fire-landsat8"
    pre_files = [next((root / "pre_20160707").glob(f"*sr_band{b}_crop.tif")) for b in (4, 3, 2)]
    post_files = [next((root / "post_20160723").glob(f"*sr_band{b}_crop.tif")) for b in (4, 3, 2)]
    pre, post = _stack(pre_files, tmp_path / "pre.tif"), _stack(post_files, tmp_path / "post.tif")
    # a package trained on reflectance scaled by 10000 (Landsat SR)
    pkg = tiny_model(
        tmp_path / "sr.safetensors",
        tile_size=512,
        overlap=64,
        normalization={"mean": [0.1, 0.1, 0.1], "std": [0.1, 0.1, 0.1], "scale": 10000.0},
    )
    out = tmp_path / "c.tif"
    res = predict(pre, post, out, pkg)
    with rasterio.open(pre) as p, rasterio.open(out) as o:
        assert (o.width, o.height) == (p.width, p.height) == (246, 177)
        assert o.transform == p.transform and o.crs == p.crs
        c = o.read(1)
        nodata = (p.read() == p.nodata).any(0)
    assert res.tiles == 1
    assert (c[~nodata] < 7).all()


def test_realdata_landsat5_dates_on_their_own_grids(tmp_path, realdata, tiny_model):
    root = realdata / "debian-r-cran-satellite-landsat5"
    pre = next((root / "LT05_20000309").glob("*_B3.TIF"))
    post = next((root / "LT5_20101218").glob("*_B3.tif"))
    out = tmp_path / "c.tif"
    predict(pre, post, out, BrightBandModel("post", threshold=-1), PredictOptions(bands=[1, 1, 1]))
    with rasterio.open(pre) as p, rasterio.open(out) as o:
        assert o.crs == p.crs and o.res == p.res
        # the output grid is pre's pixel grid, cut to the overlap of both footprints
        col = (o.transform.c - p.transform.c) / p.transform.a
        row = (o.transform.f - p.transform.f) / p.transform.e
        assert col == round(col) and row == round(row)
        assert (o.read(1) != NODATA_CLASS).mean() > 0.5


def test_a_nodata_frame_costs_no_reads_and_changes_nothing(tmp_path, tiny_model, monkeypatch):
    """Tiles where the coverage map rules out any valid pixel are skipped unread; the raster
    is identical to reading every tile."""
    import s2m_geo.predict.scene as sc

    scene = write_scene(tmp_path / "s", SceneSpec(size=200, seed=4))
    frame = {}
    for k in ("pre", "post"):
        with rasterio.open(scene[k]) as ds:
            data, t = ds.read(), ds.transform
            prof = dict(driver="GTiff", count=3, dtype="uint8", crs=ds.crs, nodata=0, tiled=True)
        big = np.zeros((3, 1200, 1200), np.uint8)
        big[:, 600:800, 900:1100] = np.maximum(data, 1)
        frame[k] = tmp_path / f"{k}_frame.tif"
        origin = t * (-900, -600)
        with rasterio.open(
            frame[k],
            "w",
            width=1200,
            height=1200,
            transform=rasterio.Affine(t.a, 0, origin[0], 0, t.e, origin[1]),
            **prof,
        ) as ds:
            ds.write(big)
    reads = []
    original = sc.ScenePair.read
    monkeypatch.setattr(sc.ScenePair, "read", lambda self, w: reads.append(w) or original(self, w))
    a = predict(frame["pre"], frame["post"], tmp_path / "a.tif", tiny_model)
    n_fast = len(reads)
    reads.clear()
    monkeypatch.setattr(sc.ScenePair, "coverage", lambda self: sc.Coverage(1200, 1200, None))
    b = predict(frame["pre"], frame["post"], tmp_path / "b.tif", tiny_model)
    assert a.tiles == b.tiles and a.tiles_skipped == b.tiles_skipped
    assert n_fast < len(reads) / 4  # only tiles near the valid area were read
    np.testing.assert_array_equal(_read(tmp_path / "a.tif")[0], _read(tmp_path / "b.tif")[0])


def test_an_all_nodata_core_allocates_nothing():
    """A core no block brought evidence to reaches the sinks as read-only views of one value
    (no array of its size), and the writer knows it for one without a valid pixel."""
    from s2m_geo.predict.stitch import BlockPartial, Stitcher, is_nodata_core
    from s2m_geo.predict.tiling import TileLayout

    layout = TileLayout(3000, 3000, 256, 32)
    blocks = layout.blocks(2)
    got = []
    stitcher = Stitcher(layout, blocks, 2, 7, lambda core, *arrays: got.append(arrays))
    for b in blocks:
        stitcher.add(BlockPartial.nothing(b))
    assert stitcher.done and len(got) == len(blocks)
    for classes, confidence, probs in got:
        for a in (classes, confidence, probs):
            assert all(s == 0 for s in a.strides) and not a.flags.writeable
        assert is_nodata_core(classes) and classes[0, 0] == NODATA_CLASS and probs.shape[0] == 7
    dense = np.full((5, 5), NODATA_CLASS, np.uint8)
    assert is_nodata_core(dense)
    dense[4, 4] = 1
    assert not is_nodata_core(dense)


def test_a_sparse_mosaic_costs_its_footprints(tmp_path, monkeypatch):
    """A mosaic VRT mostly nodata: the frame's tiles are skipped unread and counted as progress,
    its blocks are never written (the raster is a sparse tiled GeoTIFF, not a COG), and the
    footprint reads as it does predicted alone (a per-pixel model: the tiling cannot matter)."""
    import s2m_geo.predict.pipeline as pl
    from s2m_geo.testing import mosaic_vrt

    monkeypatch.setattr(pl, "SPARSE_MIN_PIXELS", 1000 * 1000)
    scene = write_scene(tmp_path / "s", SceneSpec(size=300, seed=4))
    vrts = {k: mosaic_vrt([(scene[k], 1500, 2600)], tmp_path / f"{k}.vrt", 4000) for k in ("pre", "post")}
    model = BrightBandModel()
    progress = []
    res = predict(vrts["pre"], vrts["post"], tmp_path / "m.tif", model, progress=lambda *a: progress.append(a))
    predict(scene["pre"], scene["post"], tmp_path / "alone.tif", model)
    infer = [p for p in progress if p[0] == "infer"]
    assert infer[-1][1] == infer[-1][2] == res.tiles + res.tiles_skipped and res.tiles_skipped > 10 * res.tiles
    assert any(0 < done < total for _, done, total in infer)  # skipped work shows before the end
    with rasterio.open(tmp_path / "m.tif") as ds, rasterio.open(tmp_path / "alone.tif") as alone:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG" and ds.overviews(1) == []
        assert ds.nodata == NODATA_CLASS and ds.colormap(1)[1][:3] == (0xE3, 0x1A, 0x1C)
        assert ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1) in (None, "", "0")  # never written
        np.testing.assert_array_equal(ds.read(1, window=Window(2600, 1500, 300, 300)), alone.read(1))
        assert (ds.read(1, window=Window(0, 0, 2600, 1500)) == NODATA_CLASS).all()


def _wide_pairs(tmp_path, halves: bool = False) -> dict:
    """A 1200 x 2400 pre/post pair, tiled (256 px) and striped (16 rows); with ``halves`` also
    each as its left and right halves (``pre_tiled_0``, ``pre_tiled_1``, ...)."""
    from rasterio.shutil import copy as rio_copy

    scene = write_scene(tmp_path / "s", SceneSpec(size=200, seed=4))
    files = {}
    for k in ("pre", "post"):
        with rasterio.open(scene[k]) as ds:
            data, prof = np.tile(ds.read(), (1, 6, 12)), ds.profile
        prof.update(width=data.shape[2], height=data.shape[1], tiled=True, blockxsize=256, blockysize=256)
        files[k] = tmp_path / f"{k}_tiled.tif"
        with rasterio.open(files[k], "w", **prof) as ds:
            ds.write(data)
        files[k + "_striped"] = tmp_path / f"{k}_striped.tif"
        rio_copy(files[k], files[k + "_striped"], driver="GTiff", tiled=False, blockysize=16)
        if not halves:
            continue
        for layout, src in (("tiled", files[k]), ("striped", files[k + "_striped"])):
            with rasterio.open(src) as ds:
                for i in (0, 1):
                    win = Window(1200 * i, 0, 1200, 1200)
                    half = ds.profile | {"width": 1200, "transform": ds.window_transform(win)}
                    files[f"{k}_{layout}_{i}"] = out = tmp_path / f"{k}_{layout}_{i}.tif"
                    with rasterio.open(out, "w", **half) as dst:
                        dst.write(ds.read(window=win))
    return files


def _cache_and_order(monkeypatch) -> tuple[list, list]:
    """Record GDAL_CACHEMAX and the block order of every run_tiles call."""
    import s2m_geo.predict.pipeline as pl

    seen, orders = [], []
    original = pl.run_tiles

    def run_tiles(*a, **kw):
        seen.append(rasterio.env.getenv()["GDAL_CACHEMAX"])
        orders.append([b.index for b in a[3]])
        return original(*a, **kw)

    monkeypatch.setattr(pl, "run_tiles", run_tiles)
    return seen, orders


def test_the_block_cache_while_reading_follows_the_files_layout(tmp_path, monkeypatch):
    """Tiles are read under a GDAL block cache sized by the inputs: the floor for tiled files,
    a block's height of strips across the file for striped ones (which every block of a row
    reads again), and the same raster either way. On this grid, wider than tall, the blocks
    of the tiled files run column by column (fewer cores wait); over strips, row by row."""
    import s2m_geo.predict.pipeline as pl

    wide = _wide_pairs(tmp_path)
    seen, orders = _cache_and_order(monkeypatch)
    model, opts = BrightBandModel(), PredictOptions(tile_size=128, overlap=16, block_tiles=8)
    predict(wide["pre"], wide["post"], tmp_path / "a.tif", model, opts)
    predict(wide["pre_striped"], wide["post_striped"], tmp_path / "b.tif", model, opts)
    tiled, striped = seen
    assert tiled == pl.READ_CACHE_MIN_MB << 20
    # 2 readers x 2 files x (a block's height: 8 tiles of 128 every 112 rows, + a strip) x 2400 columns x 3 bytes
    assert striped == 2 * 2 * (7 * 112 + 128 + 16) * 2400 * 3
    np.testing.assert_array_equal(_read(tmp_path / "a.tif")[0], _read(tmp_path / "b.tif")[0])
    assert orders[0] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert orders[1] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_a_mosaic_is_read_by_its_sources_layout(tmp_path, monkeypatch):
    """A VRT is decoded through its sources' blocks, not its own 128-px ones: the block cache
    is sized by the sources' strips or tiles. A source's strips are narrower than the mosaic,
    so on this grid, wider than tall, blocks run column by column over either (row by row
    only over a file's own strips), the cache then holding a row of tiles of strips; the
    raster is the files' own."""
    from s2m_geo.predict.scene import open_pair
    from s2m_geo.testing import mosaic_vrt

    files = _wide_pairs(tmp_path, halves=True)
    _, orders = _cache_and_order(monkeypatch)
    model, opts = BrightBandModel(), PredictOptions(tile_size=128, overlap=16, block_tiles=8)
    predict(files["pre"], files["post"], tmp_path / "direct.tif", model, opts)
    ext = (7 * 112 + 128, 7 * 112 + 128)  # a block of 8 tiles of 128 every 112 px: 912
    # the file blocks a row of tiles (128 rows) and a block (912 columns) may touch:
    # tiles, 2 x 256 rows and 5 x 256 columns; strips, twice 9 x 16 rows, 2 sources of 1200 columns
    for layout, rows, cols in (("tiled", 2 * 256, 5 * 256), ("striped", 2 * 9 * 16, 2 * 1200)):
        vrt = {
            k: mosaic_vrt(
                [(files[f"{k}_{layout}_0"], 0, 0), (files[f"{k}_{layout}_1"], 0, 1200)],
                tmp_path / f"{k}_{layout}.vrt",
                2400,
                1200,
            )
            for k in ("pre", "post")
        }
        with open_pair(vrt["pre"], vrt["post"]) as pair:
            assert not pair.striped()
            # 2 readers x 2 mosaics x rows x cols x 3 bytes
            assert pair.read_cache_bytes(128, ext, 2, by_rows=False) == 2 * 2 * rows * cols * 3
        predict(vrt["pre"], vrt["post"], tmp_path / f"{layout}.tif", model, opts)
        np.testing.assert_array_equal(_read(tmp_path / f"{layout}.tif")[0], _read(tmp_path / "direct.tif")[0])
    with open_pair(files["pre_striped"], files["post_striped"]) as pair:
        assert pair.striped()
    assert orders[0] == orders[1] == orders[2] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
