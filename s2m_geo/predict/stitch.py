"""Blend overlapping tile probabilities into a class raster, block by block.

Each block accumulates ``weight * probability`` of its tiles over its extent in int32 fixed
point (:func:`s2m_geo.predict.tiling.quantize`), so sums are exact and associative. The scene is cut
into *cores*, one per block (from the block's first tile to the next block's first tile);
a block's extent covers its own core and spills a strip of at least the overlap into the
cores right of and below it. :class:`Stitcher` adds every block partial into the cores it
touches, in whatever order blocks finish, and finalises a core — argmax class and
confidence, nodata outside the valid mask — as soon as all its contributors have arrived.
Memory: the blocks in flight plus the spill strips waiting for their core (copies of the
strips, not core-sized arrays: a row of waiting cores costs the scene's width times the overlap,
a column its height; blocks run along the shorter side, ``pipeline.run_order``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..classes import NODATA_CLASS
from .tiling import Block, FixedWeights, Rect, TileLayout

#: Rows of a core blended at a time when it is finished (the temporaries' height).
BLEND_ROWS = 128


@dataclass
class BlockPartial:
    """Blended evidence of one block over its extent; ``acc`` is None for a block without any
    (every tile skipped as nodata), which costs nothing however large the block."""

    block: Block
    acc: np.ndarray | None  # int32 (K+1, h, w): sum of quantized weight * probability
    wsum: np.ndarray | None  # int32 (h, w): sum of quantized weights
    valid: np.ndarray | None  # bool (h, w)

    @classmethod
    def empty(cls, block: Block, num_classes: int) -> BlockPartial:
        """A partial to add tiles to (zeros over the block's extent)."""
        h, w = block.extent.height, block.extent.width
        return cls(block, np.zeros((num_classes, h, w), np.int32), np.zeros((h, w), np.int32), np.zeros((h, w), bool))

    @classmethod
    def nothing(cls, block: Block) -> BlockPartial:
        """The partial of a block none of whose tiles had a valid pixel."""
        return cls(block, None, None, None)

    def add_tile(self, tile: Rect, probs: np.ndarray, weights: np.ndarray | FixedWeights, valid: np.ndarray) -> None:
        """Add one tile's (K+1, T, T) probabilities with its (T, T) weights
        (:meth:`~s2m_geo.predict.tiling.TileLayout.fixed_weights`, or the plain float weights)
        and its valid mask."""
        part = tile.intersect(self.block.extent)
        if part is None:
            return
        assert self.acc is not None and self.wsum is not None and self.valid is not None
        fw = weights if isinstance(weights, FixedWeights) else FixedWeights.of(weights)
        src = part.slices(tile)
        dst = part.slices(self.block.extent)
        scaled_weights = fw.scaled[src]
        # plane by plane: a plane's temporaries stay in the CPU's cache (~1.5x faster than the
        # whole tile's K+1 planes at once; the same integers)
        for k in range(probs.shape[0]):
            scaled = probs[(k, *src)] * scaled_weights
            np.rint(scaled, out=scaled)
            # an int32 copy, then an int32 add: twice as fast as adding the floats into the
            # int32 sums (numpy does that in float64) and the same integers
            plane = self.acc[(k, *dst)]
            plane += scaled.astype(np.int32)
        self.wsum[dst] += fw.fixed[src]
        self.valid[dst] |= valid[src]


def core_rects(layout: TileLayout, blocks: list[Block], block_tiles: int) -> dict[tuple[int, int], Rect]:
    """The core of every block: the pixels from its first tile to the next block's first tile."""
    rs, cs = layout.row_starts, layout.col_starts
    row_edges = [rs[i] for i in range(0, len(rs), block_tiles)] + [layout.height]
    col_edges = [cs[j] for j in range(0, len(cs), block_tiles)] + [layout.width]
    return {
        b.index: Rect(
            row_edges[b.index[0]],
            col_edges[b.index[1]],
            row_edges[b.index[0] + 1] - row_edges[b.index[0]],
            col_edges[b.index[1] + 1] - col_edges[b.index[1]],
        )
        for b in blocks
    }


def _argmax_max(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``acc.argmax(0)`` as uint8 and ``acc.max(0)``, plane by plane: numpy's argmax over the
    first axis copies the whole (K+1, h, w) array first (and returns int64)."""
    best = acc[0].copy()
    classes = np.zeros(best.shape, np.uint8)
    for k in range(1, acc.shape[0]):
        better = acc[k] > best  # strictly: a tie keeps the first class, as argmax does
        classes[better] = k
        np.maximum(best, acc[k], out=best)
    return classes, best


def _embed(
    area: Rect, core: Rect, classes: np.ndarray, confidence: np.ndarray, probs: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A core's arrays with ``area``'s in place and nodata around them."""
    h, w = core.height, core.width
    dst = area.slices(core)
    full = np.full((h, w), NODATA_CLASS, np.uint8)
    full[dst] = classes
    conf = np.zeros((h, w), np.float32)
    conf[dst] = confidence
    if probs is not None:
        p = np.zeros((probs.shape[0], h, w), np.float32)
        p[(slice(None), *dst)] = probs
        probs = p
    return full, conf, probs


def nodata_core(h: int, w: int, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The classes, confidence and (``num_classes`` > 0) probabilities of an ``h`` x ``w`` core
    without a valid pixel, as read-only views of one value each: a mosaic's nodata frame
    allocates nothing, however many cores it has (:func:`is_nodata_core` tells them apart)."""
    classes = np.broadcast_to(np.uint8(NODATA_CLASS), (h, w))
    probs = np.broadcast_to(np.float32(0), (num_classes, h, w)) if num_classes else None
    return classes, np.broadcast_to(np.float32(0), (h, w)), probs


def is_nodata_core(classes: np.ndarray) -> bool:
    """Whether a core's ``classes`` hold no valid pixel (cheap for :func:`nodata_core`'s)."""
    if classes.flat[0] != NODATA_CLASS:
        return False
    return all(s == 0 for s in classes.strides) or not (classes != NODATA_CLASS).any()


@dataclass
class _Pending:
    """A core waiting for its contributors: copies of the parts of their partials that fall
    on it (a neighbour's spill is a strip as thin as the overlap), summed when the last one
    arrives — so what waits is strips, never whole cores."""

    core: Rect
    expected: int
    arrived: int = 0
    pieces: list[tuple[Rect, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass
class Stitcher:
    """Merges block partials; calls ``sink(core, classes, confidence, probabilities)`` per
    finished core (classes uint8 with :data:`NODATA_CLASS` outside the valid mask,
    confidence float32 in [0, 1] (0 outside), probabilities float32 (K+1, h, w) when
    ``want_probabilities``, else None — they cost K+1 floats per pixel of the core)."""

    layout: TileLayout
    blocks: list[Block]
    block_tiles: int
    num_classes: int
    sink: Callable[[Rect, np.ndarray, np.ndarray, np.ndarray | None], None]
    want_probabilities: bool = True
    _pending: dict[tuple[int, int], _Pending] = field(default_factory=dict)
    _cores: dict[tuple[int, int], Rect] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cores = self._cores = core_rects(self.layout, self.blocks, self.block_tiles)
        # core edges, to find the cores an extent touches by bisection: linear set-up and
        # per-block work that does not grow with the number of blocks
        self._row_edges = sorted({c.row for c in cores.values()})
        self._col_edges = sorted({c.col for c in cores.values()})
        counts = dict.fromkeys(cores, 0)
        for b in self.blocks:
            for k in self._touched(b.extent):
                counts[k] += 1
        self._pending = {k: _Pending(core, counts[k]) for k, core in cores.items()}

    def _touched(self, ext: Rect) -> list[tuple[int, int]]:
        """Keys of the cores ``ext`` overlaps (cores tile the scene on the edge grid)."""
        i0 = bisect_right(self._row_edges, ext.row) - 1
        i1 = bisect_left(self._row_edges, ext.row_end)
        j0 = bisect_right(self._col_edges, ext.col) - 1
        j1 = bisect_left(self._col_edges, ext.col_end)
        keys = [(i, j) for i in range(max(i0, 0), i1) for j in range(max(j0, 0), j1)]
        return [k for k in keys if k in self._cores and ext.intersect(self._cores[k]) is not None]

    @property
    def done(self) -> bool:
        return not self._pending

    def add(self, partial: BlockPartial) -> None:
        """Merge one block's partial; finalise every core it completes. The partial's arrays
        are the stitcher's from then on (a core's sum is made in them; the partial is left
        without them, so that they are freed as soon as the cores are summed, before the
        finished cores go to the sink)."""
        ext = partial.block.extent
        acc, wsum, valid = partial.acc, partial.wsum, partial.valid
        partial.acc = partial.wsum = partial.valid = None
        complete = []
        for key in self._touched(ext):
            p = self._pending[key]
            p.arrived += 1
            if acc is not None:  # a partial without evidence only counts as arrived
                assert wsum is not None and valid is not None
                part = ext.intersect(p.core)
                assert part is not None
                src = part.slices(ext)
                if p.arrived == p.expected:  # summed right away: no copy
                    p.pieces.append((part, acc[(slice(None), *src)], wsum[src], valid[src]))
                else:
                    p.pieces.append((part, acc[(slice(None), *src)].copy(), wsum[src].copy(), valid[src].copy()))
            if p.arrived == p.expected:
                complete.append(key)
        del acc, wsum, valid
        for key in complete:
            self._finish(key)

    def _finish(self, key: tuple[int, int]) -> None:
        p = self._pending.pop(key)
        h, w = p.core.height, p.core.width
        if not p.pieces:  # no block brought evidence: all nodata, without computing anything
            self.sink(p.core, *nodata_core(h, w, self.num_classes if self.want_probabilities else 0))
            return
        # the core's own block covers it whole: its piece is the sum the others are added to
        # (a view of that partial, or a copy of it: no core-sized array of K+1 planes more);
        # without it (a mosaic's footprint edge) only the pieces' bounding box is summed
        whole = next((i for i, piece in enumerate(p.pieces) if piece[0] == p.core), None)
        if whole is not None:
            area, acc, wsum, valid = p.pieces.pop(whole)
        else:
            r0, c0 = min(q[0].row for q in p.pieces), min(q[0].col for q in p.pieces)
            r1, c1 = max(q[0].row_end for q in p.pieces), max(q[0].col_end for q in p.pieces)
            area = Rect(r0, c0, r1 - r0, c1 - c0)
            acc = np.zeros((self.num_classes, area.height, area.width), np.int32)
            wsum = np.zeros((area.height, area.width), np.int32)
            valid = np.zeros((area.height, area.width), bool)
        for part, a, ws, v in p.pieces:
            dst = part.slices(area)
            acc[(slice(None), *dst)] += a
            wsum[dst] += ws
            valid[dst] |= v
        p.pieces.clear()
        classes, confidence, probs = self._blend(acc, wsum, valid)
        del acc, wsum, valid
        if area != p.core:  # the rest of the core had no evidence: nodata
            classes, confidence, probs = _embed(area, p.core, classes, confidence, probs)
        self.sink(p.core, classes, confidence, probs)

    def _blend(
        self, acc: np.ndarray, wsum: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Classes, confidence and (when wanted) probabilities of summed evidence, strip by strip
        (:data:`BLEND_ROWS` rows), so that the temporaries stay small beside a core's outputs."""
        h, w = wsum.shape
        classes = np.empty((h, w), np.uint8)
        confidence = np.empty((h, w), np.float32)
        probs = np.empty((acc.shape[0], h, w), np.float32) if self.want_probabilities else None
        for r in range(0, h, BLEND_ROWS):
            rows = slice(r, r + BLEND_ROWS)
            a = acc[:, rows]
            bad = ~(valid[rows] & (wsum[rows] > 0))
            wsum_f = np.maximum(wsum[rows], 1).astype(np.float32)
            # the blend divides every class by the same positive weight sum, so the argmax and
            # the max can be taken on the exact integer sums
            cls, best = _argmax_max(a)
            cls[bad] = NODATA_CLASS
            classes[rows] = cls
            conf = confidence[rows]
            conf[...] = best  # int32 -> float32, as astype
            conf /= wsum_f
            conf[bad] = 0.0
            if probs is not None:
                pr = probs[:, rows]
                pr[...] = a
                pr /= wsum_f
                pr[:, bad] = 0.0
        return classes, confidence, probs
