"""Pure window math for tiled prediction: the tile grid, blocks of tiles, blend weights (and
the windows over the blocks a sparse file stores, :func:`held_rects`).

One tile grid covers the whole scene: tiles of ``tile`` pixels start every
``stride = tile - overlap`` pixels, the last row/column shifted back so it ends on the scene
edge (a scene smaller than a tile gets one tile, padded past the edge and cropped back).
Because the grid is global, the tiles that cover a pixel do not depend on how the work is cut.

A *block* is a rectangle of ``block_tiles x block_tiles`` tiles: the unit of parallel work. It
accumulates its tiles' weighted probabilities over its *extent* (the union of its tiles);
neighbouring extents overlap by at least ``overlap`` pixels. Accumulation is done in integer
fixed point (:data:`FIXED_ONE`), so sums are exact and merging block partials gives the
same result in any order: splitting a scene into blocks changes nothing.

Blend weights taper linearly or as a cosine across the overlap on every side that has a
neighbouring tile, never on the scene edge, and are strictly positive, so every pixel is
covered with positive weight and ``sum(w * p) / sum(w)`` is a proper convex blend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Fixed-point scale of accumulated weighted probabilities (int32; at most 4 overlapping
#: tiles of weight <= 1 per pixel keeps sums far below 2**31).
FIXED_ONE = 1 << 24
BLENDS = ("cosine", "linear")


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets along one axis of ``length`` pixels."""
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class Rect:
    """A pixel rectangle ``[row, row + height) x [col, col + width)`` of the scene grid."""

    row: int
    col: int
    height: int
    width: int

    @property
    def row_end(self) -> int:
        return self.row + self.height

    @property
    def col_end(self) -> int:
        return self.col + self.width

    def intersect(self, other: Rect) -> Rect | None:
        r0, c0 = max(self.row, other.row), max(self.col, other.col)
        r1, c1 = min(self.row_end, other.row_end), min(self.col_end, other.col_end)
        return Rect(r0, c0, r1 - r0, c1 - c0) if r0 < r1 and c0 < c1 else None

    def slices(self, origin: Rect | None = None) -> tuple[slice, slice]:
        """Array slices of this rect inside an array whose [0, 0] is ``origin``'s corner."""
        r, c = (origin.row, origin.col) if origin else (0, 0)
        return slice(self.row - r, self.row_end - r), slice(self.col - c, self.col_end - c)


@dataclass(frozen=True)
class Block:
    """A rectangle of tiles: its index, its tiles (row-major) and the pixels they cover."""

    index: tuple[int, int]
    tiles: tuple[Rect, ...]
    extent: Rect  # union of the tiles, clipped to the scene


@dataclass(frozen=True)
class TileLayout:
    """The global tile grid of a ``height x width`` scene."""

    height: int
    width: int
    tile: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"empty scene {self.height}x{self.width}")
        axis_starts(1, self.tile, self.overlap)  # validates tile/overlap

    @property
    def row_starts(self) -> list[int]:
        return axis_starts(self.height, self.tile, self.overlap)

    @property
    def col_starts(self) -> list[int]:
        return axis_starts(self.width, self.tile, self.overlap)

    @property
    def scene(self) -> Rect:
        return Rect(0, 0, self.height, self.width)

    def tiles(self) -> list[Rect]:
        """All tiles, row-major; a tile may reach past the scene edge (padding)."""
        return [Rect(r, c, self.tile, self.tile) for r in self.row_starts for c in self.col_starts]

    def blocks(self, block_tiles: int = 4) -> list[Block]:
        """Blocks of ``block_tiles x block_tiles`` tiles, row-major (their tiles too); see
        :func:`column_major` for the other order they may run in."""
        if block_tiles < 1:
            raise ValueError("block_tiles must be >= 1")
        rs, cs = self.row_starts, self.col_starts
        out = []
        for bi, i0 in enumerate(range(0, len(rs), block_tiles)):
            for bj, j0 in enumerate(range(0, len(cs), block_tiles)):
                tiles = tuple(
                    Rect(r, c, self.tile, self.tile)
                    for r in rs[i0 : i0 + block_tiles]
                    for c in cs[j0 : j0 + block_tiles]
                )
                r0, c0 = tiles[0].row, tiles[0].col
                r1, c1 = tiles[-1].row_end, tiles[-1].col_end
                extent = Rect(r0, c0, r1 - r0, c1 - c0).intersect(self.scene)
                assert extent is not None
                out.append(Block((bi, bj), tiles, extent))
        return out

    def _sides(self, tile: Rect) -> tuple[bool, bool, bool, bool]:
        """Whether ``tile`` has a neighbour above, below, left and right."""
        return tile.row > 0, tile.row_end < self.height, tile.col > 0, tile.col_end < self.width

    def tile_weights(self, tile: Rect, blend: str = "cosine") -> np.ndarray:
        """(tile, tile) float32 weights of one tile: tapered towards each neighbour only
        (read-only: one array per kind of tile, shared)."""
        return _weights(self.tile, self.overlap, *self._sides(tile), blend)

    def fixed_weights(self, tile: Rect, blend: str = "cosine") -> FixedWeights:
        """:meth:`tile_weights` as the stitcher adds them, made once per kind of tile."""
        return _fixed_weights(self.tile, self.overlap, *self._sides(tile), blend)


@dataclass(frozen=True)
class FixedWeights:
    """A tile's weights in fixed point: ``scaled`` = weights × :data:`FIXED_ONE` (float32, exact:
    a power of two scales exactly; ``p * scaled`` is ``p * w * FIXED_ONE`` bit for bit) and
    ``fixed`` = :func:`quantize` of the weights (int32, what the weight sums add)."""

    scaled: np.ndarray
    fixed: np.ndarray

    @classmethod
    def of(cls, weights: np.ndarray) -> FixedWeights:
        return cls(weights * np.float32(FIXED_ONE), quantize(weights))


@lru_cache(maxsize=64)
def _weights(n: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool, blend: str) -> np.ndarray:
    w = np.outer(_ramp(n, overlap, top, bottom, blend), _ramp(n, overlap, left, right, blend))
    w.setflags(write=False)
    return w


@lru_cache(maxsize=64)
def _fixed_weights(n: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool, blend: str) -> FixedWeights:
    fw = FixedWeights.of(_weights(n, overlap, top, bottom, left, right, blend))
    fw.scaled.setflags(write=False)
    fw.fixed.setflags(write=False)
    return fw


@lru_cache(maxsize=64)
def _ramp(n: int, overlap: int, start: bool, end: bool, blend: str) -> np.ndarray:
    w = np.ones(n, np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap  # in (0, 1): never 0
        if blend == "cosine":
            ramp = np.sin(0.5 * math.pi * t) ** 2
        elif blend == "linear":
            ramp = t
        else:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        if start:
            w[:overlap] = ramp
        if end:
            w[n - overlap :] = np.minimum(w[n - overlap :], ramp[::-1])
    w.setflags(write=False)
    return w


def quantize(weighted: np.ndarray) -> np.ndarray:
    """Weighted probabilities (or weights) in [0, 1] -> int32 fixed point."""
    out: np.ndarray = np.rint(weighted * FIXED_ONE).astype(np.int32)
    return out


def column_major(blocks: list[Block]) -> list[Block]:
    """``blocks`` ordered column by column (top to bottom, then left to right).

    A block's cores wait for the blocks right of and below them, holding strips as wide as
    the overlap (:class:`~s2m_geo.predict.stitch.Stitcher`): row by row, a row of them waits;
    column by column, a column (on an 80,000 x 24,000 px mosaic, 3.3x less). The result is
    the same in any order."""
    return sorted(blocks, key=lambda b: (b.index[1], b.index[0]))


def is_strip(block_shape: tuple[int, int], extent_cols: int) -> bool:
    """Whether a file's blocks are at least as wide as a block of tiles (strips, whole-row
    blocks): every block of a row of blocks decodes them, so a block cache holding a block's
    height of them (:func:`read_cache_bytes`) decodes them once when blocks run row by row."""
    return block_shape[1] >= extent_cols


def mosaic_block_shape(sources: list[tuple[tuple[int, int], int]]) -> tuple[int, int]:
    """The block shape a mosaic (a VRT) is decoded in, from its sources' ``(block shape, width)``:
    GDAL reads a VRT's windows from its sources, by their blocks, not by the VRT's own. Over
    any source stored in strips (blocks as wide as the file), the tallest such strip across
    the widest such source, so the mosaic counts as striped (:func:`is_strip`); else the
    largest source block."""
    if not sources:
        raise ValueError("a mosaic without sources has no block shape")
    strips = [(block[0], width) for block, width in sources if is_strip(block, width)]
    if strips:
        return max(h for h, _ in strips), max(w for _, w in strips)
    return max(bh for (bh, _), _ in sources), max(bw for (_, bw), _ in sources)


def read_cache_bytes(
    block_shape: tuple[int, int],
    file_width: int,
    pixel_bytes: int,
    tile: int,
    extent: tuple[int, int],
    by_rows: bool = True,
) -> int:
    """Bytes of one file's decoded blocks that reading a block of tiles of ``extent`` (rows,
    cols) keeps coming back to, in the file's pixels: what GDAL's block cache must hold so
    that no block is decoded twice within a block of tiles (or a row of them).

    Tiles are read row by row within a block of tiles. File blocks narrower than a block of
    tiles are reused only along one row of tiles (the file blocks its height and the block's
    width touch); wider ones (strips, whole-row blocks) are read again by
    the next block of a row, so when blocks run row by row (``by_rows``) the block's whole
    height of them stays; column by column, twice a row of tiles' worth (GDAL's cache drops
    the least recently used block: one that just fits thrashes), decoded again by the next
    column."""
    bh, bw = block_shape
    eh, ew = extent
    cols = min(file_width, _blocks_span(ew, bw))
    if not is_strip(block_shape, ew):
        rows = _blocks_span(tile, bh)
    elif by_rows:
        rows = _blocks_span(eh, bh)
    else:  # LRU: a cache that just holds what a row of tiles cycles through drops each strip before its reuse
        rows = 2 * _blocks_span(tile, bh)
    return rows * cols * pixel_bytes


def _blocks_span(n: int, block: int) -> int:
    """Pixels of the file blocks ``n`` consecutive pixels may touch (at most ceil((n-1)/block) + 1
    blocks, wherever they start)."""
    return (-(-(n - 1) // block) + 1) * block


def held_rects(held: np.ndarray, block_shape: tuple[int, int], height: int, width: int, most: int) -> list[Rect]:
    """Rectangles over the ``True`` blocks of ``held`` (block rows x block columns of a
    ``height`` x ``width`` raster stored in ``block_shape`` blocks), row by row: each a run of
    neighbouring blocks in one block row, of at most ``most`` blocks; in a file of strips (one
    block column), a run of neighbouring strips."""
    bh, bw = block_shape
    held = np.asarray(held, bool)
    if held.shape[1] == 1:  # strips: runs down the one column
        return [Rect(a * bh, 0, min(b * bh, height) - a * bh, width) for a, b in _runs(held[:, 0], most)]
    return [
        Rect(by * bh, a * bw, min(bh, height - by * bh), min(b * bw, width) - a * bw)
        for by, row in enumerate(held)
        for a, b in _runs(row, most)
    ]


def _runs(flags: np.ndarray, most: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of ``True`` in a 1-D array, each cut to at most ``most``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [
        (a, min(a + most, x1)) for x0, x1 in zip(edges[::2].tolist(), edges[1::2].tolist()) for a in range(x0, x1, most)
    ]
