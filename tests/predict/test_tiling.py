"""Tile grid, blocks, blend weights and stitching: property tests."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2m_geo.classes import NODATA_CLASS
from s2m_geo.predict.stitch import BlockPartial, Stitcher, core_rects
from s2m_geo.predict.tiling import Rect, TileLayout, axis_starts, column_major, held_rects

dims = st.integers(1, 700)
tiles = st.sampled_from([16, 32, 64, 96])


@st.composite
def layouts(draw):
    tile = draw(tiles)
    overlap = draw(st.integers(0, tile // 2 - 1))
    return TileLayout(draw(dims), draw(dims), tile, overlap)


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_tiles_cover_every_pixel_and_stay_inside_the_padded_grid(layout):
    cover = np.zeros((layout.height, layout.width), np.int32)
    for t in layout.tiles():
        assert t.row >= 0 and t.col >= 0
        assert t.row_end <= max(layout.height, layout.tile)
        assert t.col_end <= max(layout.width, layout.tile)
        part = t.intersect(layout.scene)
        cover[part.slices()] += 1
    assert cover.min() >= 1
    # consecutive tiles overlap by at least the requested overlap
    for starts in (layout.row_starts, layout.col_starts):
        assert starts == sorted(set(starts))
        for a, b in zip(starts, starts[1:]):
            assert layout.tile - (b - a) >= layout.overlap


@settings(max_examples=150, deadline=None)
@given(layouts(), st.sampled_from(["cosine", "linear"]))
def test_blend_weights_are_positive_and_normalise_to_one(layout, blend):
    wsum = np.zeros((layout.height, layout.width), np.float64)
    for t in layout.tiles():
        w = layout.tile_weights(t, blend)
        assert w.shape == (layout.tile, layout.tile) and (w > 0).all() and (w <= 1).all()
        part = t.intersect(layout.scene)
        wsum[part.slices()] += w[part.slices(t)]
    assert (wsum > 0).all()
    # a constant probability blends back to itself everywhere
    assert np.allclose((0.37 * wsum) / wsum, 0.37)


def test_weights_do_not_taper_on_the_scene_edge():
    layout = TileLayout(100, 100, 64, 16)
    first = layout.tiles()[0]
    w = layout.tile_weights(first)
    assert w[0, 0] == 1.0 and w[-1, -1] < 0.1 and w[20, 20] == 1.0


def test_axis_starts_examples():
    assert axis_starts(512, 512, 64) == [0]
    assert axis_starts(300, 512, 64) == [0]
    assert axis_starts(1000, 512, 64) == [0, 448, 488]
    with pytest.raises(ValueError):
        axis_starts(100, 64, 64)


@settings(max_examples=60, deadline=None)
@given(layouts(), st.integers(1, 4))
def test_blocks_partition_tiles_and_cores_partition_the_scene(layout, block_tiles):
    blocks = layout.blocks(block_tiles)
    all_tiles = [t for b in blocks for t in b.tiles]
    assert sorted(all_tiles, key=lambda t: (t.row, t.col)) == layout.tiles()
    cores = core_rects(layout, blocks, block_tiles)
    cover = np.zeros((layout.height, layout.width), np.int32)
    for b in blocks:
        core = cores[b.index]
        cover[core.slices()] += 1
        assert b.extent.intersect(core) == core  # a block's extent holds its whole core
    assert (cover == 1).all()


@settings(max_examples=40, deadline=None)
@given(layouts(), st.integers(1, 4))
def test_blocks_column_major_are_the_same_blocks_by_columns(layout, block_tiles):
    rows = layout.blocks(block_tiles)
    cols = column_major(rows)
    assert sorted(cols, key=lambda b: b.index) == rows
    assert [b.index for b in cols] == sorted((b.index for b in rows), key=lambda ij: (ij[1], ij[0]))


def _waiting_bytes(layout, blocks, block_tiles, k=3):
    """The most bytes of strips the stitcher holds for waiting cores, blocks added in order."""
    st_ = Stitcher(layout, blocks, block_tiles, k, lambda *a: None, want_probabilities=False)
    most = 0
    for b in blocks:
        p = BlockPartial.empty(b, k)
        p.valid[:] = True
        st_.add(p)
        most = max(most, sum(sum(x.nbytes for x in piece[1:]) for q in st_._pending.values() for piece in q.pieces))
    return most


def test_column_by_column_a_wide_grid_keeps_a_column_of_strips_waiting():
    """Blocks run row by row hold a row of spill strips as wide as the grid; column by column,
    a column as tall as the grid: on a grid 4x wider than tall, about 4x less."""
    layout = TileLayout(400, 1600, 64, 16)
    by_rows = _waiting_bytes(layout, layout.blocks(2), 2)
    by_cols = _waiting_bytes(layout, column_major(layout.blocks(2)), 2)
    assert 3 * by_cols < by_rows


def _fake_probs(tile, k, rng_seed=0):
    """Deterministic per-tile probabilities that differ between overlapping tiles."""
    rng = np.random.default_rng([tile.row, tile.col, rng_seed])
    logits = rng.normal(size=(k, tile.height, tile.width)).astype(np.float32)
    e = np.exp(logits)
    return e / e.sum(0)


def _stitch(layout, block_tiles, order_seed=None, k=3):
    blocks = layout.blocks(block_tiles)
    out_c = np.full((layout.height, layout.width), 99, np.uint8)
    out_p = np.zeros((k, layout.height, layout.width), np.float32)

    def sink(core, classes, conf, probs):
        assert (out_c[core.slices()] == 99).all()  # every core written exactly once
        out_c[core.slices()] = classes
        out_p[(slice(None), *core.slices())] = probs

    st_ = Stitcher(layout, blocks, block_tiles, k, sink)
    partials = []
    for b in blocks:
        p = BlockPartial.empty(b, k)
        for t in b.tiles:
            valid = np.ones((t.height, t.width), bool)
            valid[: max(0, 3 - t.row)] = False  # top 3 scene rows invalid
            p.add_tile(t, _fake_probs(t, k), layout.tile_weights(t), valid)
        partials.append(p)
    if order_seed is not None:
        np.random.default_rng(order_seed).shuffle(partials)
    for p in partials:
        st_.add(p)
    assert st_.done
    return out_c, out_p


@settings(max_examples=25, deadline=None)
@given(layouts(), st.integers(1, 3), st.integers(0, 1000))
def test_stitching_is_identical_for_any_block_split_and_order(layout, block_tiles, order):
    one_c, one_p = _stitch(layout, block_tiles=10_000)
    many_c, many_p = _stitch(layout, block_tiles, order_seed=order)
    assert np.array_equal(one_c, many_c) and np.array_equal(one_p, many_p)
    assert (one_c[:3] == NODATA_CLASS).all() and (one_c[3:] != NODATA_CLASS).all()
    assert np.allclose(one_p[:, 3:].sum(0), 1.0, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(layouts(), st.integers(0, 1000))
def test_tiles_are_added_in_exact_fixed_point_with_shared_weights(layout, seed):
    """A block's sums are the integers rint(p * w * 2**24) (float32 products, exact scaling by
    a power of two), whether the weights come as plain floats or made once per kind of tile."""
    rng = np.random.default_rng(seed)
    (block,) = layout.blocks(10_000)
    k = 3
    plain, shared = BlockPartial.empty(block, k), BlockPartial.empty(block, k)
    expected = np.zeros((k, block.extent.height, block.extent.width), np.int64)
    for t in block.tiles:
        probs = rng.dirichlet(np.ones(k), size=(t.height, t.width)).astype(np.float32).transpose(2, 0, 1)
        valid = np.ones((t.height, t.width), bool)
        w = layout.tile_weights(t)
        assert layout.fixed_weights(t) is layout.fixed_weights(t)  # one per kind of tile
        plain.add_tile(t, probs, w, valid)
        shared.add_tile(t, probs, layout.fixed_weights(t), valid)
        part = t.intersect(block.extent)
        src = (slice(None), *part.slices(t))
        fixed = np.rint(probs[src] * (w[src[1:]] * np.float32(2**24)))
        expected[(slice(None), *part.slices(block.extent))] += fixed.astype(np.int64)
    np.testing.assert_array_equal(plain.acc, expected)
    np.testing.assert_array_equal(shared.acc, expected)
    np.testing.assert_array_equal(shared.wsum, plain.wsum)


def test_a_block_without_evidence_stitches_as_one_of_zeros():
    """A mosaic's footprint edge: blocks that saw no valid pixel come as ``nothing`` partials,
    so a core may get evidence only from its neighbours' spill strips (summed over their
    bounding box alone); the result is that of zero partials in their place."""
    layout, k = TileLayout(700, 900, 96, 16), 3
    blocks = layout.blocks(2)
    evidence = {b.index for i, b in enumerate(blocks) if i % 3 == 0}
    outs = []
    for zeros in (False, True):
        got: dict = {}
        st_ = Stitcher(
            layout, blocks, 2, k, lambda core, *a, got=got: got.__setitem__(core, tuple(x.copy() for x in a))
        )
        for b in blocks:
            if b.index not in evidence and not zeros:
                st_.add(BlockPartial.nothing(b))
                continue
            p = BlockPartial.empty(b, k)
            if b.index in evidence:
                for t in b.tiles:
                    valid = np.random.default_rng([t.row, t.col]).random((t.height, t.width)) < 0.9
                    p.add_tile(t, _fake_probs(t, k), layout.tile_weights(t), valid)
            st_.add(p)
        assert st_.done
        outs.append(got)
    assert outs[0].keys() == outs[1].keys()
    for core, arrays in outs[0].items():
        assert all(np.array_equal(x, y) for x, y in zip(arrays, outs[1][core]))
    cores = core_rects(layout, blocks, 2)
    lent = [i for i, core in cores.items() if i not in evidence and (outs[0][core][0] != NODATA_CLASS).any()]
    assert lent  # cores whose only evidence is a neighbour's spill


def test_cores_are_blended_strip_by_strip_as_in_one_piece(monkeypatch):
    """A finished core is blended in strips of rows (small temporaries); the strips give the
    arrays of blending it in one piece, bit for bit."""
    import s2m_geo.predict.stitch as stitch

    layout = TileLayout(300, 260, 96, 16)
    whole = _stitch(layout, block_tiles=2)
    monkeypatch.setattr(stitch, "BLEND_ROWS", 7)
    strips = _stitch(layout, block_tiles=2)
    assert np.array_equal(whole[0], strips[0]) and np.array_equal(whole[1], strips[1])


def test_a_blocks_arrays_are_freed_before_its_core_goes_to_the_sink():
    """The stitcher takes a partial's arrays: once a core is summed they are freed, so the
    sink's work (writing, vectorizing) does not carry the block's K+1 planes beside it."""
    import weakref

    layout, k = TileLayout(400, 400, 96, 16), 3
    blocks = layout.blocks(2)
    alive = []

    def sink(core, classes, conf, probs):
        alive.append(ref() is not None)

    st_ = Stitcher(layout, blocks, 2, k, sink)
    for b in blocks:  # in order: each block completes its own core
        p = BlockPartial.empty(b, k)
        for t in b.tiles:
            p.add_tile(t, _fake_probs(t, k), layout.tile_weights(t), np.ones((t.height, t.width), bool))
        ref = weakref.ref(p.acc)
        st_.add(p)
        assert p.acc is None and p.wsum is None and p.valid is None
    assert st_.done and len(alive) == len(blocks) and not any(alive)


def test_the_read_cache_holds_a_row_of_tiles_or_a_block_height_of_strips():
    from s2m_geo.predict.tiling import read_cache_bytes

    # 256-pixel tiles: the file blocks one row of tiles of the block touches (3 x 9 of them)
    assert read_cache_bytes((256, 256), 8192, 3, 512, (1856, 1856)) == 3 * 256 * 9 * 256 * 3
    # 16-row strips: every block of the row reads them again, so its whole height, file-wide
    assert read_cache_bytes((16, 8192), 8192, 3, 512, (1856, 1856)) == (1856 + 16) * 8192 * 3
    # tiles wider than a block of tiles behave as strips, over the blocks they span (5 x 2)
    assert read_cache_bytes((512, 4096), 8192, 1, 512, (1856, 1856)) == 5 * 512 * 2 * 4096
    # column by column, strips are decoded again by the next column: twice a row of tiles of them
    assert read_cache_bytes((16, 8192), 8192, 3, 512, (1856, 1856), by_rows=False) == 2 * (512 + 16) * 8192 * 3
    # a mosaic's one-row strips, 4096 px wide: a block of tiles may cross two sources
    assert read_cache_bytes((1, 4096), 80000, 3, 512, (1856, 1856), by_rows=False) == 2 * 512 * 2 * 4096 * 3


def test_a_mosaic_is_decoded_in_its_sources_blocks():
    from s2m_geo.predict.tiling import is_strip, mosaic_block_shape

    # tiled sources: the largest of their blocks
    assert mosaic_block_shape([((256, 256), 4096), ((512, 512), 8192)]) == (512, 512)
    # one source in strips makes the mosaic striped: the tallest strip across the widest such source
    shape = mosaic_block_shape([((256, 256), 9000), ((1, 4096), 4096), ((16, 2048), 2048)])
    assert shape == (16, 4096)
    assert is_strip(shape, 1856) and not is_strip(shape, 8192)
    with pytest.raises(ValueError):
        mosaic_block_shape([])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(0, 2**30),
)
def test_held_rects_cover_exactly_the_held_blocks(nby, nbx, most, seed):
    """The rectangles a sparse file's stored blocks are read by: disjoint, each at most
    ``most`` blocks, and together exactly the held blocks' pixels (edge blocks cropped)."""
    rng = np.random.default_rng(seed)
    held = rng.random((nby, nbx)) < 0.5
    bh, bw = 4, 5
    height, width = nby * bh - int(rng.integers(0, bh)), nbx * bw - int(rng.integers(0, bw))
    block_shape = (bh, bw) if nbx > 1 else (bh, width)  # one block column: a file of strips
    want = np.kron(held, np.ones((bh, bw if nbx > 1 else width), bool))[:height, :width]
    got = np.zeros((height, width), np.int64)
    for r in held_rects(held, block_shape, height, width, most):
        assert r.height > 0 and r.width > 0
        got[r.row : r.row_end, r.col : r.col_end] += 1
        blocks = (r.height + bh - 1) // bh * ((r.width + bw - 1) // bw if nbx > 1 else 1)
        assert blocks <= most
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_held_rects_join_neighbours_of_a_row_and_strips_down_the_file():
    held = np.array([[0, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    assert held_rects(held, (10, 8), 25, 45, 3) == [
        Rect(0, 8, 10, 24),
        Rect(0, 40, 10, 5),
        Rect(20, 0, 5, 24),
        Rect(20, 24, 5, 21),
    ]
    strips = np.array([[1], [1], [0], [1]], bool)
    assert held_rects(strips, (4, 45), 15, 45, 8) == [Rect(0, 0, 8, 45), Rect(12, 0, 3, 45)]
