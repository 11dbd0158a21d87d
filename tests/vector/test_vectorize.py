"""Vectorisation: one polygon per connected region of one class, independent of the core cut."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from s2m_geo.predict.tiling import Rect
from s2m_geo.vector import vectorize as vz
from s2m_geo.vector.vectorize import Region, Vectorizer, pixel_area, simplified, vectorize

#: A 0.5 m UTM-like north-up pixel grid.
T05 = Affine(0.5, 0.0, 733601.0, 0.0, -0.5, 3725139.0)
PX = 0.25


def grid_cores(h: int, w: int, rows: list[int], cols: list[int]) -> list[Rect]:
    re = [0, *sorted(rows), h]
    ce = [0, *sorted(cols), w]
    return [
        Rect(re[i], ce[j], re[i + 1] - re[i], ce[j + 1] - ce[j]) for i in range(len(re) - 1) for j in range(len(ce) - 1)
    ]


def run_cores(classes, confidence, cores, transform=T05, connectivity=4) -> list[Region]:
    h, w = classes.shape
    vec = Vectorizer(transform, h, w, connectivity)
    for c in cores:
        vec.add(c, classes[c.slices()], None if confidence is None else confidence[c.slices()])
    if sum(c.height * c.width for c in cores) == h * w:
        # the whole scene arrived: every region was complete and emitted before finish()
        assert vec.pending_pieces == 0 and vec.pending_cores == 0
    return vec.finish()


def by_first(regions):
    return {r.first_pixel: r for r in regions}


def assert_same(regions, reference, exact=True):
    """Same regions, stats and geometry (vertex for vertex when ``exact``)."""
    assert len(regions) == len(reference)
    a, b = by_first(regions), by_first(reference)
    assert a.keys() == b.keys()
    for k, r in a.items():
        ref = b[k]
        assert (r.class_id, r.pixels, r.row_sum, r.col_sum) == (ref.class_id, ref.pixels, ref.row_sum, ref.col_sum)
        assert r.confidence_sum == pytest.approx(ref.confidence_sum, rel=1e-9, abs=1e-9)
        assert r.geometry.is_valid
        assert r.geometry.equals(ref.geometry)
        assert shapely.symmetric_difference(r.geometry, ref.geometry).area < 1e-9
        if exact:
            assert shapely.equals_exact(r.geometry, ref.geometry, tolerance=0.0)


def ring_raster() -> np.ndarray:
    """30x30 scene: a square ring of class 1 around the centre, crossing both seams at 15."""
    a = np.zeros((30, 30), np.uint8)
    a[6:24, 6:24] = 1
    a[11:19, 11:19] = 0  # the hole (class 0)
    return a


QUADS = grid_cores(30, 30, [15], [15])


# --- seams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["forward", "reversed", "shuffled"])
def test_ring_across_four_cores_is_one_polygon(order):
    a = ring_raster()
    conf = np.random.default_rng(0).random(a.shape, dtype=np.float32)
    cores = list(QUADS)
    if order == "reversed":
        cores.reverse()
    elif order == "shuffled":
        random.Random(3).shuffle(cores)
    one = vectorize(a, conf, T05)
    regions = run_cores(a, conf, cores)
    assert len(one) == len(regions) == 1
    r = regions[0]
    assert isinstance(r.geometry, shapely.Polygon)
    n = int((a == 1).sum())
    assert r.pixels == n == 18 * 18 - 8 * 8
    assert r.geometry.area == pytest.approx(n * PX, abs=1e-9)
    assert r.confidence_sum == pytest.approx(float(conf[a == 1].astype(np.float64).sum()), rel=1e-12)
    assert_same(regions, one)
    # seam vertices are gone: 4 outer + 4 inner corners, like the one-core polygon
    assert len(r.geometry.exterior.coords) == 5
    assert len(r.geometry.interiors) == 1 and len(r.geometry.interiors[0].coords) == 5


def test_l_shape_across_four_cores():
    a = np.zeros((30, 30), np.uint8)
    a[3:27, 12:18] = 2  # vertical bar crossing row 15
    a[21:27, 3:27] = 2  # foot crossing column 15
    for cores in (QUADS, QUADS[::-1], [QUADS[1], QUADS[2], QUADS[0], QUADS[3]]):
        regions = run_cores(a, None, cores)
        assert len(regions) == 1
        assert regions[0].class_id == 2
        assert regions[0].geometry.area == pytest.approx((a == 2).sum() * PX)
        assert_same(regions, vectorize(a, None, T05))


def test_region_spanning_many_cores_and_t_junctions():
    a = np.zeros((40, 40), np.uint8)
    a[2:38, 2:38] = 1
    a[8:30, 9:12] = 0
    a[20, 5:35] = 0  # splits nothing: still connected around the ends
    cores = [
        Rect(0, 0, 13, 40),
        Rect(13, 0, 27, 7),
        Rect(13, 7, 9, 33),
        Rect(22, 7, 18, 19),
        Rect(22, 26, 18, 14),
    ]  # T-junctions, not a grid
    assert sum(c.height * c.width for c in cores) == 1600
    one = vectorize(a, None, T05)
    for seed in range(5):
        random.Random(seed).shuffle(cores)
        assert_same(run_cores(a, None, cores), one)


def test_hole_is_kept_and_not_counted():
    a = ring_raster()
    (r,) = vectorize(a, np.ones(a.shape, np.float32), T05)
    assert len(r.geometry.interiors) == 1
    hole = shapely.Polygon(r.geometry.interiors[0])
    assert hole.area == pytest.approx(8 * 8 * PX)
    assert r.pixels == 18 * 18 - 64
    assert r.confidence_sum == pytest.approx(r.pixels)
    assert not r.geometry.contains(hole.centroid)


def test_classes_and_separate_regions():
    a = np.zeros((10, 10), np.uint8)
    a[1:4, 1:4] = 1
    a[1:4, 4:7] = 2  # adjacent, other class
    a[7:9, 7:9] = 1  # same class, separate
    regions = vectorize(a, None, T05)
    assert sorted((r.class_id, r.pixels) for r in regions) == [(1, 4), (1, 9), (2, 9)]
    # class 1 and 2 share an edge but stay two polygons
    r1, r2 = sorted(regions[:2], key=lambda r: r.class_id)
    assert r1.geometry.touches(r2.geometry)


def test_diagonal_only_touching_depends_on_connectivity():
    a = np.zeros((6, 6), np.uint8)
    a[1:3, 1:3] = 1
    a[3:5, 3:5] = 1  # touches the first block only at a corner
    assert len(vectorize(a, None, T05, connectivity=4)) == 2
    (r,) = vectorize(a, None, T05, connectivity=8)
    assert r.pixels == 8 and r.geometry.area == pytest.approx(8 * PX) and r.geometry.is_valid
    # the same across a seam crossing exactly at the touching corner
    cores = grid_cores(6, 6, [3], [3])
    assert len(run_cores(a, None, cores, connectivity=4)) == 2
    assert_same(run_cores(a, None, cores[::-1], connectivity=8), [r])


def test_nodata_and_no_change_never_vectorised():
    a = np.full((12, 12), 255, np.uint8)
    a[:6] = 0
    assert vectorize(a, None, T05) == []
    assert run_cores(a, None, grid_cores(12, 12, [5], [7])) == []
    a[3:9, 3:9] = 3  # a region straddling nodata and no change
    (r,) = vectorize(a, None, T05)
    assert r.class_id == 3 and r.pixels == 36


def test_confidence_mean():
    rng = np.random.default_rng(1)
    a = np.zeros((20, 20), np.uint8)
    a[2:18, 4:9] = 1
    conf = rng.random(a.shape, dtype=np.float32)
    (r,) = run_cores(a, conf, grid_cores(20, 20, [7, 13], [6]))
    assert r.confidence == pytest.approx(float(conf[a == 1].mean()), rel=1e-6)
    assert r.confidence_sum == pytest.approx(float(conf[a == 1].astype(np.float64).sum()), rel=1e-12)
    rows, cols = np.nonzero(a == 1)
    assert (r.row_sum, r.col_sum) == (rows.sum(), cols.sum())
    cr, cc = r.pixel_centroid
    assert T05 * (cc, cr) == pytest.approx((r.geometry.centroid.x, r.geometry.centroid.y))
    assert r.first_pixel == (2, 4)


def test_usable_as_stitcher_sink_with_early_emission():
    """Row-major cores as the stitcher produces them: regions come out while streaming, and
    only one row of cores' borders is held at a time."""
    rng = np.random.default_rng(5)
    h = w = 160
    a = (ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.52).astype(np.uint8)
    emitted: list[Region] = []
    vec = Vectorizer(T05, h, w, on_region=emitted.append)
    cores = grid_cores(h, w, list(range(20, h, 20)), list(range(20, w, 20)))
    held = []
    for c in cores:
        vec(c, a[c.slices()], np.ones((c.height, c.width), np.float32), None)
        held.append(vec.pending_cores)
    assert max(held) <= 8 + 1  # one row of cores plus the current one
    assert vec.pending_pieces == 0 and vec.pending_cores == 0  # all arrived: all emitted
    assert vec.finish() == []
    assert_same(emitted, vectorize(a, np.ones((h, w), np.float32), T05))


def test_fed_by_the_stitcher_in_block_order():
    """The real producer: Stitcher cores (any block completion order) straight into a
    Vectorizer; the result equals vectorising the assembled raster in one go."""
    from s2m_geo.predict.stitch import BlockPartial, Stitcher
    from s2m_geo.predict.tiling import TileLayout

    k = 4
    layout = TileLayout(300, 260, tile=64, overlap=16)
    rng = np.random.default_rng(11)
    pad = 64
    fields = ndimage.gaussian_filter(rng.standard_normal((k, 300 + pad, 260 + pad)), (0, 6, 6))
    probs_all = np.exp(fields * 40)
    probs_all = (probs_all / probs_all.sum(0)).astype(np.float32)
    full = np.full((300, 260), 99, np.uint8)
    conf_full = np.zeros((300, 260), np.float32)
    vec = Vectorizer(T05, 300, 260)

    def keep(core, classes, conf, probs):
        full[core.slices()] = classes
        conf_full[core.slices()] = conf

    def sink(core, classes, conf, probs):
        keep(core, classes, conf, probs)
        vec(core, classes, conf, probs)

    blocks = layout.blocks(2)
    stitcher = Stitcher(layout, blocks, 2, k, sink)
    partials = []
    for b in blocks:
        p = BlockPartial.empty(b, k)
        for t in b.tiles:
            valid = np.ones((t.height, t.width), bool)
            valid[:, : max(0, 20 - t.col)] = False  # a nodata strip on the west edge
            p.add_tile(t, probs_all[:, t.row : t.row_end, t.col : t.col_end], layout.tile_weights(t), valid)
        partials.append(p)
    random.Random(2).shuffle(partials)
    for p in partials:
        stitcher.add(p)
    assert stitcher.done and (full != 99).all()
    regions = vec.finish()
    assert len(regions) > 10
    assert_same(regions, vectorize(full, conf_full, T05))
    assert sum(r.pixels for r in regions) == int(((full > 0) & (full < 255)).sum())


def test_as_a_predict_sink(tmp_path, small_scene):
    """End to end: predict() hands its cores to the Vectorizer; polygons match the raster."""
    rasterio = pytest.importorskip("rasterio")
    from s2m_geo.classes import load_class_table
    from s2m_geo.model import PackageMeta
    from s2m_geo.predict.pipeline import PredictOptions, predict

    class Bright:  # class 1 where the post image is bright
        name = "bright"
        num_classes = 7
        meta = PackageMeta(class_table=load_class_table(), tile_size=64, default_overlap=16)

        def probabilities(self, pre, post):
            x = post[:, 0]
            p = np.full((x.shape[0], 7, *x.shape[1:]), 0.01, np.float32)
            p[:, 1] += (x > 150) * 0.9
            p[:, 0] += (x <= 150) * 0.9
            return p / p.sum(1, keepdims=True)

    with rasterio.open(small_scene["pre"]) as ds:
        transform, (h, w) = ds.transform, ds.shape
    vec = Vectorizer(transform, h, w)
    out = tmp_path / "changes.tif"
    predict(small_scene["pre"], small_scene["post"], out, Bright(), PredictOptions(block_tiles=2), sinks=[vec])
    regions = vec.finish()
    with rasterio.open(out) as ds:
        raster = ds.read(1)
    assert len(regions) > 0
    ref = vectorize(raster, np.zeros(raster.shape, np.float32), transform)
    assert len(regions) == len(ref)
    for r, q in zip(regions, ref):
        assert (r.first_pixel, r.class_id, r.pixels) == (q.first_pixel, q.class_id, q.pixels)
        assert shapely.equals_exact(r.geometry, q.geometry, tolerance=0.0)
        assert 0.5 < r.confidence <= 1.0


def test_bad_cores_are_refused():
    vec = Vectorizer(T05, 10, 10)
    with pytest.raises(ValueError):
        vec.add(Rect(5, 5, 6, 5), np.zeros((6, 5), np.uint8), None)  # past the edge
    with pytest.raises(ValueError):
        vec.add(Rect(0, 0, 5, 5), np.zeros((4, 5), np.uint8), None)  # wrong shape
    vec.add(Rect(0, 0, 5, 5), np.ones((5, 5), np.uint8), None)
    with pytest.raises(ValueError):
        vec.add(Rect(4, 4, 2, 2), np.ones((2, 2), np.uint8), None)  # overlaps an arrived core
    with pytest.raises(ValueError):
        Vectorizer(T05, 10, 10, connectivity=6)
    # an unfinished scene: the held region comes out at finish
    (r,) = vec.finish()
    assert r.pixels == 25


# --- property: any cut, any order == one core ----------------------------------------------------


@st.composite
def partitions(draw, h: int, w: int):
    """A random guillotine partition of the h x w grid (T-junctions included)."""
    out = []

    def split(r: Rect, depth: int) -> None:
        can_h, can_v = r.height > 1, r.width > 1
        kind = draw(st.sampled_from(["leaf", "h", "v"])) if depth < 4 else "leaf"
        if kind == "h" and can_h:
            k = draw(st.integers(1, r.height - 1))
            split(Rect(r.row, r.col, k, r.width), depth + 1)
            split(Rect(r.row + k, r.col, r.height - k, r.width), depth + 1)
        elif kind == "v" and can_v:
            k = draw(st.integers(1, r.width - 1))
            split(Rect(r.row, r.col, r.height, k), depth + 1)
            split(Rect(r.row, r.col + k, r.height, r.width - k), depth + 1)
        else:
            out.append(r)

    split(Rect(0, 0, h, w), 0)
    return draw(st.permutations(out))


@st.composite
def scenes(draw):
    h, w = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    values = draw(st.lists(st.sampled_from([0, 1, 1, 2, 255]), min_size=h * w, max_size=h * w))
    classes = np.array(values, np.uint8).reshape(h, w)
    if draw(st.booleans()):  # blobbier: repeat rows/cols pairwise
        classes = np.repeat(np.repeat(classes, 2, 0), 2, 1)[:h, :w]
    if draw(st.booleans()):
        cores = draw(partitions(h, w))
    else:
        rows = draw(st.sets(st.integers(1, h - 1), max_size=3)) if h > 1 else set()
        cols = draw(st.sets(st.integers(1, w - 1), max_size=3)) if w > 1 else set()
        cores = draw(st.permutations(grid_cores(h, w, sorted(rows), sorted(cols))))
    conf = np.round(np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w), 3)
    return classes, conf, cores, draw(st.sampled_from([4, 8]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_any_cut_any_order_equals_one_core(scene):
    classes, conf, cores, conn = scene
    one = vectorize(classes, conf, T05, connectivity=conn)
    cut = run_cores(classes, conf, cores, connectivity=conn)

    def key(rs):
        return Counter((r.class_id, r.pixels, round(r.geometry.area, 6), round(r.confidence_sum, 4)) for r in rs)

    assert key(cut) == key(one)
    assert_same(cut, one)
    # and the one-core result itself agrees with scipy's labelling of the whole raster
    structure = ndimage.generate_binary_structure(2, 1 if conn == 4 else 2)
    expected = Counter()
    for k in (1, 2):
        lab, n = ndimage.label(classes == k, structure)
        expected.update((k, int(c)) for c in np.bincount(lab.ravel())[1:])
    assert Counter((r.class_id, r.pixels) for r in one) == expected
    for r in one:
        assert r.geometry.area == pytest.approx(r.pixels * PX)
        if conn == 4:
            assert isinstance(r.geometry, shapely.Polygon)


@st.composite
def class_rasters(draw):
    """Small class rasters whose regions of different classes touch often (blobs of 1-3 px)."""
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    values = draw(st.lists(st.sampled_from([0, 1, 2, 3, 7, 255]), min_size=h * w, max_size=h * w))
    classes = np.array(values, np.uint8).reshape(h, w)
    r = draw(st.integers(1, 3))
    return np.repeat(np.repeat(classes, r, 0), r, 1)[:h, :w].copy(), draw(st.sampled_from([4, 8]))


@settings(max_examples=300, deadline=None)
@given(class_rasters())
def test_one_labelling_equals_labelling_each_class(raster):
    """The labels are those of labelling every class on its own, numbered class by class in
    the order of their first pixel, though regions of different classes that touch are first
    labelled as one."""
    classes, conn = raster
    structure = ndimage.generate_binary_structure(2, 1 if conn == 4 else 2)
    expected = np.zeros(classes.shape, np.int32)
    expected_class = [0]
    for k in range(1, 255):
        lab, n = ndimage.label(classes == k, structure)
        if n == 0:
            continue
        expected[lab > 0] = lab[lab > 0] + len(expected_class) - 1
        expected_class += [k] * n
    share, rows = vz.MIXED_SHARE, vz.SCAN_ROWS
    try:
        # as it is, always and never class by class; first pixels found in strips of 1 and 3 rows
        for vz.MIXED_SHARE, vz.SCAN_ROWS in ((share, rows), (0.0, rows), (np.inf, 1), (np.inf, 3)):
            labels, label_class = vz._label(classes, conn)
            np.testing.assert_array_equal(labels, expected)
            np.testing.assert_array_equal(label_class, expected_class)
    finally:
        vz.MIXED_SHARE, vz.SCAN_ROWS = share, rows


# --- georeferencing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        Affine(0.5, 0.0, 1000.0, 0.0, 0.5, 2000.0),  # south-up
        Affine.translation(500000.0, 4000000.0) * Affine.rotation(30.0) * Affine.scale(2.0, -2.0),  # rotated
    ],
)
def test_polygons_follow_the_affine(transform):
    a = np.zeros((8, 9), np.uint8)
    a[5, 6] = 1
    a[0:3, 0:9] = 2  # crosses the seam below
    (r1,) = [r for r in vectorize(a, None, transform) if r.class_id == 1]
    corners = {transform * (6, 5), transform * (7, 5), transform * (7, 6), transform * (6, 6)}
    got = {tuple(p) for p in np.asarray(r1.geometry.exterior.coords)[:-1]}
    assert len(got) == 4
    for p in corners:
        assert min(np.hypot(p[0] - q[0], p[1] - q[1]) for q in got) < 1e-6
    assert r1.geometry.area == pytest.approx(pixel_area(transform))
    assert r1.geometry.exterior.is_ccw  # right-hand rule, whatever the affine's handedness
    cut = run_cores(a, None, grid_cores(8, 9, [1, 4], [4]), transform=transform)
    assert_same(cut, vectorize(a, None, transform))
    (r2,) = [r for r in cut if r.class_id == 2]
    assert r2.geometry.area == pytest.approx(27 * pixel_area(transform))


# --- simplification ----------------------------------------------------------------------------


def staircase() -> np.ndarray:
    a = np.zeros((40, 40), np.uint8)
    for i in range(40):
        a[i, : i + 1] = 1  # a lower-left triangle with a 1-pixel staircase edge
    a[25:35, 3:8] = 0  # a hole
    a[0:2, 38:40] = 2  # a tiny region
    return a


def test_simplified_keeps_valid_and_holes():
    (big,) = [r for r in vectorize(staircase(), None, T05) if r.class_id == 1]
    s = simplified(big.geometry, 1.0)
    before = len(big.geometry.exterior.coords)
    after = len(s.exterior.coords)
    assert before > 70 and after < 10
    assert s.is_valid
    assert len(s.interiors) == 1
    assert s.area == pytest.approx(big.geometry.area, rel=0.05)
    assert simplified(big.geometry, 0.0).equals(big.geometry)  # no tolerance changes nothing


# --- real data ---------------------------------------------------------------------------------


def test_spacenet_buildings_round_trip(realdata):
    """Rasterise the 43 SpaceNet building footprints onto the 0.5 m grid, vectorise in four
    shuffled cores, and compare with the footprints."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.features import rasterize
    from shapely.geometry import shape

    folder = realdata / "solaris-spacenet-sample"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    with rasterio.open(folder / "sample_geotiff.tif") as ds:
        transform, (h, w) = ds.transform, ds.shape
    feats = json.loads((folder / "geotiff_labels.geojson").read_text())["features"]
    buildings = [shape(f["geometry"]) for f in feats]
    assert len(buildings) == 43

    def iou(a, b):
        return shapely.intersection(a, b).area / shapely.union(a, b).area

    # one class id per building keeps buildings apart even if they touched
    ids = rasterize([(g, i + 1) for i, g in enumerate(buildings)], out_shape=(h, w), transform=transform, dtype="uint8")
    cores = grid_cores(h, w, [300, 450], [450, 600])
    random.Random(0).shuffle(cores)
    regions = run_cores(ids, None, cores, transform=transform)
    assert_same(regions, vectorize(ids, None, transform))
    # vectorising is lossless: each output polygon is exactly its pixels
    for r in regions:
        assert r.geometry.area == pytest.approx(r.pixels * pixel_area(transform))
    # 44 regions: building 20 rasterises to 941 pixels plus one pixel that touches them only
    # diagonally (a 4-connected split); every other building is one region.
    counts = Counter(r.class_id for r in regions)
    assert len(regions) == 44 and counts[20] == 2 and set(counts) == set(range(1, 44))
    best = [max(iou(g, r.geometry) for r in regions if r.class_id == i + 1) for i, g in enumerate(buildings)]
    # on the 0.5 m grid the loss is the rasterisation's own: small footprints (18-130 m²)
    # lose up to 16 % IoU to pixel staircases; most are >= 0.95
    assert min(best) > 0.8
    assert sum(b >= 0.95 for b in best) >= 34

    # all buildings as class 1: none touch, so still one polygon per building (8-connected)
    ones = (ids > 0).astype(np.uint8)
    assert len(run_cores(ones, None, cores, transform=transform, connectivity=8)) == 43
    assert len(run_cores(ones, None, cores, transform=transform, connectivity=4)) == 44

    # on a 4x finer grid (0.125 m) rasterisation error shrinks: every building's IoU >= 0.95.
    # Building 20's thin spike still breaks diagonally there, so 8-connectivity gives the 43.
    fine = transform * Affine.scale(0.25)
    ones = rasterize(buildings, out_shape=(4 * h, 4 * w), transform=fine, dtype="uint8")
    fcores = grid_cores(4 * h, 4 * w, [1200, 1800, 2400], [1000, 2000])
    random.Random(1).shuffle(fcores)
    regions = run_cores(ones, None, fcores, transform=fine, connectivity=8)
    assert len(regions) == 43
    tree = shapely.STRtree([r.geometry for r in regions])
    for g in buildings:
        hits = tree.query(g, predicate="intersects")
        assert max(iou(g, regions[i].geometry) for i in hits) >= 0.95


# --- throughput (sanity, not a benchmark) ------------------------------------------------------


def test_throughput_2048_blobs():
    rng = np.random.default_rng(7)
    n = 2048
    field = ndimage.gaussian_filter(rng.standard_normal((n // 4, n // 4)).astype(np.float32), 1.5)
    field = np.kron(field, np.ones((4, 4), np.float32))
    classes = np.zeros((n, n), np.uint8)
    classes[field > 0.15] = 1
    classes[field < -0.2] = 2
    classes[:, :40] = 255
    conf = np.ones((n, n), np.float32)
    t0 = time.perf_counter()
    regions = run_cores(classes, conf, grid_cores(n, n, [512, 1024, 1536], [512, 1024, 1536]))
    elapsed = time.perf_counter() - t0
    print(f"2048x2048: {len(regions)} regions in {elapsed:.2f} s")
    assert len(regions) > 100
    assert sum(r.pixels for r in regions) == int(((classes == 1) | (classes == 2)).sum())
    assert sum(r.geometry.area for r in regions) == pytest.approx(sum(r.pixels for r in regions) * PX)
