"""Two scenes in, a change raster out: align, tile, infer, stitch, write — for any scene size.

Locally, tiles stream through one model: reads run ahead in a thread pool while the model
consumes batches (batches may span blocks), each finished block goes to the
:class:`~s2m_geo.predict.stitch.Stitcher`, and every finished core is written straight into the
output. With a Dask ``client``, blocks are tasks on the cluster's workers instead (each
worker loads the model once) and their partials are stitched as they complete. Both paths
give the same raster, bit for bit, because blending is exact and order-independent.

Outputs are written under temporary names in the output folder and renamed at the end; the
class raster becomes a Cloud Optimized GeoTIFF with the class table's colours and nodata
255 outside the valid mask.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.windows import Window

from ..atomic import atomic_path, discard, publish, published_together, temp_path
from ..classes import NODATA_CLASS
from ..errors import InputError
from ..model.normalization import Normalization
from ..outputs import check_outputs, claimed, same_file
from .runners import ChangeModel, load_change_model, read_threads_for
from .stitch import BlockPartial, Stitcher, is_nodata_core
from .style import style_path, write_raster_style
from .tiling import Block, Rect, TileLayout, column_major

Progress = Callable[[str, int, int], None]

#: GDAL's block cache around a prediction (writing the outputs, copying the COG), MB. GDAL's
#: default is 5 % of the RAM, which a large scene fills with blocks already read and written:
#: memory then grows with the scene.
GDAL_CACHE_MB = 64
#: The least block cache while tiles are read, MB; above it, what the inputs' block layout
#: needs (:func:`read_cache`).
READ_CACHE_MIN_MB = 16
# Not GDAL_NUM_THREADS=ALL_CPUS beside it: with the read-ahead threads' own handles it gave
# corrupted reads (a scene paired with itself showed change; tests/predict/test_pipeline.py).


@dataclass
class PredictOptions:
    """Knobs of :func:`predict` (None = the model package's own value)."""

    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    block_tiles: int = 4
    blend: str = "cosine"
    device: str = "auto"
    runtime: str = "auto"  # model packages: torch, onnx, or auto (onnx on the CPU)
    bands: list[int] | None = None
    post_bands: list[int] | None = None
    crs: str | None = None
    resolution: float | None = None
    zero_as_nodata: bool = False
    read_threads: int | None = None  # None: what the model needs (runners.read_threads_for)


@dataclass
class PredictResult:
    """What a prediction produced."""

    raster: Path | None
    probabilities: Path | None
    grid: Any
    tiles: int
    tiles_skipped: int
    class_counts: dict[int, int] = field(default_factory=dict)
    model: str = ""


class Sink(Protocol):
    """What a prediction hands its results to, besides the raster: ``start(grid, meta)``
    once the target grid is known, then one call per finished core with its ``classes``
    (uint8, nodata 255), ``confidence`` and, when asked for, ``probabilities``."""

    def start(self, grid: Any, meta: Any) -> None: ...

    def __call__(
        self, core: Rect, classes: np.ndarray, confidence: np.ndarray, probabilities: np.ndarray | None
    ) -> None: ...


def _window(r: Rect) -> Window:
    return Window(r.col, r.row, r.width, r.height)


def input_warnings(pre: str | Path, post: str | Path) -> list[str]:
    """What a user should hear before a run on this pair (empty when nothing is odd)."""
    if same_file(pre, post):
        return [
            f"{pre} is given as both pre and post: there is nothing to compare, so no "
            f"change will be found; give the two dates' scenes"
        ]
    return []


#: A class raster of more pixels than this, at most :data:`SPARSE_WRITTEN` of them written (a
#: mosaic's footprints in a nodata frame), is published as a sparse tiled GeoTIFF instead of
#: a COG: GDAL's COG copy and its overviews pass over every pixel of the grid (~25 s for a
#: 100,000² grid holding two 4096² footprints), the GTiff copy skips the blocks never written.
SPARSE_MIN_PIXELS = 8192 * 8192
SPARSE_WRITTEN = 0.25


def _sparse_tiff(src: Path, dst: Path) -> None:
    """Copy a sparse tiled GeoTIFF to a deflated one, its never-written blocks left empty (they
    read as nodata; nodata, colour table and tags come along); no overviews."""
    from rasterio.shutil import copy as rio_copy

    with rasterio.open(src) as ds:
        rio_copy(
            ds,
            dst,
            driver="GTiff",
            tiled=True,
            blockxsize=512,
            blockysize=512,
            compress="DEFLATE",
            BIGTIFF="IF_SAFER",
            SPARSE_OK="TRUE",
            NUM_THREADS="ALL_CPUS",
        )


def _cog(src: Path, dst: Path, resampling: str) -> None:
    """Copy a tiled GeoTIFF to a Cloud Optimized GeoTIFF (overviews down to one block;
    nodata, colour table and tags come along)."""
    from rasterio.shutil import copy as rio_copy

    with rasterio.open(src) as ds:
        rio_copy(
            ds,
            dst,
            driver="COG",
            compress="DEFLATE",
            blocksize=512,
            overview_resampling=resampling,
            BIGTIFF="IF_SAFER",
            SPARSE_OK="TRUE",  # nodata blocks stay unwritten: a mosaic's frame costs no bytes
            NUM_THREADS="ALL_CPUS",  # compression and overviews on every core (same bytes)
        )


class _Writer:
    """The temporary outputs and the ``sink`` the stitcher calls."""

    def __init__(self, raster: Path | None, probabilities: Path | None, grid, model: ChangeModel) -> None:
        self.table = model.meta.class_table
        k = model.num_classes
        base = dict(
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            crs=grid.crs,
            transform=grid.transform,
            tiled=True,
            blockxsize=512,
            blockysize=512,
            BIGTIFF="IF_SAFER",
            sparse_ok=True,  # blocks never written read as nodata (class raster) or 0 (probabilities)
        )
        self.tmp_raster = temp_path(raster) if raster else None
        self.tmp_probs = temp_path(probabilities) if probabilities else None
        self.ds = None
        if self.tmp_raster is not None:
            self.ds = rasterio.open(
                # not compressed: it is read once more, by the COG copy, which compresses
                self.tmp_raster,
                "w",
                count=1,
                dtype="uint8",
                nodata=NODATA_CLASS,
                compress="none",
                **base,
            )
            self.ds.write_colormap(1, self.table.colormap())
            self.ds.update_tags(1, **{f"class_{c.id}": c.name for c in self.table})
        self.probs = (
            rasterio.open(
                self.tmp_probs, "w", count=k, dtype="float32", nodata=None, compress="deflate", predictor=3, **base
            )
            if self.tmp_probs
            else None
        )
        if self.probs is not None:
            for c in self.table:
                self.probs.set_band_description(c.id + 1, c.name)
        self.counts = np.zeros(256, np.int64)
        self.written = 0  # pixels of the cores written (the others are left sparse)
        self.lock = threading.Lock()
        self.extra_sinks: list[Callable] = []

    def sink(self, core: Rect, classes: np.ndarray, confidence: np.ndarray, probs: np.ndarray | None) -> None:
        # a core without a valid pixel is what the sparse files read where nothing is written
        nothing = is_nodata_core(classes)
        with self.lock:
            if self.ds is not None and not nothing:
                self.ds.write(classes, 1, window=_window(core))
            if self.probs is not None and not nothing:
                self.probs.write(probs, window=_window(core))
            if nothing:
                self.counts[NODATA_CLASS] += classes.size
            else:
                for r in range(0, classes.shape[0], 256):  # bincount takes intp: 8 bytes a pixel, in strips
                    self.counts += np.bincount(classes[r : r + 256].ravel(), minlength=256)
                self.written += classes.size
            for s in self.extra_sinks:
                s(core, classes, confidence, probs)

    def close(self) -> None:
        if self.ds is not None:
            self.ds.close()
        if self.probs is not None:
            self.probs.close()

    def discard(self) -> None:
        self.close()
        for p in (self.tmp_raster, self.tmp_probs):
            if p is not None:
                p.unlink(missing_ok=True)


class _InOrder:
    """Runs ``work`` on each item :meth:`put` to it, in order, in a thread of its own, so
    blending, finishing cores, writing and vectorising overlap the reads and the model; at most
    ``depth`` items wait (memory stays bounded). :meth:`close` waits for the last item and
    re-raises the first error ``work`` raised (after it, items are drained, not worked)."""

    _STOP = object()

    def __init__(self, work: Callable[[Any], None], depth: int = 1) -> None:
        self._work = work
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="s2m-stitch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not self._STOP:
            if self._error is None:
                try:
                    self._work(item)
                except BaseException as exc:
                    self._error = exc

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error


def _tile_stream(pair, tiles: list[tuple[int, Rect]], threads: int, ahead: int) -> Iterable:
    """Yield ``(block index, tile, pre, post, valid)`` in order, reads running ``ahead``."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s2m-read") as pool:
        queue: deque = deque()
        it = iter(tiles)
        for item in it:
            queue.append((item, pool.submit(pair.read, _window(item[1]))))
            if len(queue) >= ahead:
                break
        while queue:
            (bi, tile), fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(pair.read, _window(nxt[1]))))
            pre, post, valid = fut.result()
            yield bi, tile, pre, post, valid


def _readers(opts: PredictOptions, model: ChangeModel) -> int:
    """Reader threads of a run: ``opts.read_threads``, else what ``model`` needs
    (:func:`~s2m_geo.predict.runners.read_threads_for`)."""
    return opts.read_threads or read_threads_for(model)


def run_order(pair, layout: TileLayout, block_tiles: int) -> tuple[list[Block], bool]:
    """The blocks in the order they run, and whether that is row by row: column by column on a
    grid wider than tall, so that one column of cores waits for its neighbours' strips, not one
    row of the width (an 80,000 x 24,000 px mosaic: 3.3x less); row by row otherwise, and over a
    file stored in strips as wide as itself, which only rows of blocks decode once
    (:meth:`ScenePair.striped`; a mosaic's sources are narrower, decoded a few times over)."""
    blocks = layout.blocks(block_tiles)
    if layout.width <= layout.height or pair.striped():
        return blocks, True
    return column_major(blocks), False


def read_cache(pair, blocks: list[Block], tile: int, threads: int, by_rows: bool = True) -> int:
    """GDAL's block cache, bytes, while the tiles of ``blocks`` are read (row by row when
    ``by_rows``): what the inputs' block layout needs to decode no block twice within a block
    of tiles (:meth:`~s2m_geo.predict.scene.ScenePair.read_cache_bytes`: a few rows of tiled
    files' blocks; of strips, a block's height row by row, twice a row of tiles' column by
    column; a VRT in its sources' blocks), at least :data:`READ_CACHE_MIN_MB` and at most
    GDAL's own default, 5 % of the RAM (beyond it striped files are decoded again)."""
    import psutil

    ext = max((b.extent for b in blocks), key=lambda e: e.height * e.width)
    need = pair.read_cache_bytes(tile, (ext.height, ext.width), threads, by_rows)
    cap = max(GDAL_CACHE_MB << 20, psutil.virtual_memory().total // 20)
    return int(min(max(need, READ_CACHE_MIN_MB << 20), cap))


def _readable_tiles(pair, tiles: list[tuple[int, Rect]], skip: Callable[[int], None]) -> list[tuple[int, Rect]]:
    """The tiles that may hold a valid pixel (the pair's coverage map); ``skip`` the others,
    without reading them: a mosaic's nodata frame costs next to nothing."""
    rects = np.array([(t.row, t.col, t.height, t.width) for _, t in tiles], np.int64).reshape(-1, 4)
    may = pair.coverage().may_hold_rects(rects)
    readable = []
    for (bi, tile), ok in zip(tiles, may.tolist()):
        if ok:
            readable.append((bi, tile))
        else:
            skip(bi)
    return readable


class _Blender:
    """Blends tiles' probabilities into their block partials and hands each finished block to
    ``on_block``; called with ``(skipped tiles' blocks, [(block, tile, valid)], probabilities)``."""

    def __init__(self, layout: TileLayout, blocks: list[Block], k: int, blend: str, on_block) -> None:
        self.layout, self.blocks, self.k, self.blend, self.on_block = layout, blocks, k, blend, on_block
        self.remaining = [len(b.tiles) for b in blocks]
        self.partials: dict[int, BlockPartial] = {}

    def _tile_done(self, bi: int) -> None:
        self.remaining[bi] -= 1
        if self.remaining[bi] == 0:
            partial = self.partials.pop(bi) if bi in self.partials else BlockPartial.nothing(self.blocks[bi])
            self.on_block(partial)

    def __call__(self, work: tuple[list[int], list, np.ndarray | None]) -> None:
        skipped_blocks, items, probs = work
        for bi in skipped_blocks:
            self._tile_done(bi)
        for (bi, tile, valid), p in zip(items, probs if probs is not None else ()):
            if bi not in self.partials:
                self.partials[bi] = BlockPartial.empty(self.blocks[bi], self.k)
            self.partials[bi].add_tile(tile, p, self.layout.fixed_weights(tile, self.blend), valid)
            self._tile_done(bi)


def run_tiles(
    pair,
    model: ChangeModel,
    layout: TileLayout,
    blocks: list[Block],
    opts: PredictOptions,
    on_block: Callable[[BlockPartial], None],
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Stream every tile of ``blocks`` through ``model`` in batches; hand each finished block's
    partial to ``on_block``. Returns (tiles run, tiles skipped as all-invalid).

    The model runs in the calling thread; blending its probabilities into the block partials
    and ``on_block`` run in one thread of their own, in the order of the tiles (so the result
    and the order of ``on_block`` calls are those of a single thread), while the next batch
    is read and run."""
    tiles = [(i, t) for i, b in enumerate(blocks) for t in b.tiles]
    batch: list = []
    skips: list[int] = []  # skipped since the last hand-over (one hand-over for many skips)
    done = skipped = 0
    # one batch of probabilities waits: where the model is cheap the blending thread is the
    # slower one, and a second waiting batch (28 MB at 512 px, 7 classes) only raised the peak
    blending = _InOrder(_Blender(layout, blocks, model.num_classes, opts.blend, on_block), depth=1)

    def hand_over(items: list, probs: np.ndarray | None) -> None:
        blending.put((skips.copy(), items, probs))
        skips.clear()

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        probs = model.probabilities(np.stack([b[2] for b in batch]), np.stack([b[3] for b in batch]))
        hand_over([(bi, tile, valid) for bi, tile, _, _, valid in batch], probs)
        done += len(batch)
        batch.clear()
        if progress:
            progress("infer", done + skipped, len(tiles))

    def skip(bi: int) -> None:
        nonlocal skipped
        skipped += 1
        skips.append(bi)
        if progress and skipped % 64 == 0:  # skipped work is progress too
            progress("infer", done + skipped, len(tiles))

    try:
        readable = _readable_tiles(pair, tiles, skip)
        for item in _tile_stream(pair, readable, _readers(opts, model), ahead=max(2 * opts.batch_size, 4)):
            if not item[4].any():  # nothing valid under this tile: no need to run the model
                skip(item[0])
                continue
            batch.append(item)
            if len(batch) >= opts.batch_size:
                flush()
        flush()
        if skips:
            hand_over([], None)
    finally:
        blending.close()
    if progress:
        progress("infer", len(tiles), len(tiles))
    return done, skipped


# --- distributed: one block per task ------------------------------------------------------------

_WORKER_MODELS: dict[tuple[str, str, str], ChangeModel] = {}
_WORKER_LOCK = threading.Lock()


def worker_model(path: str, device: str, runtime: str = "auto") -> ChangeModel:
    """The model of this worker process, loaded once."""
    with _WORKER_LOCK:
        key = (path, device, runtime)
        if key not in _WORKER_MODELS:
            _WORKER_MODELS[key] = load_change_model(path, device, runtime)
        return _WORKER_MODELS[key]


def run_block(pair, model_path: str, block: Block, layout: TileLayout, opts: PredictOptions) -> BlockPartial:
    """One block as a self-contained task (for Dask workers): read, infer, blend.

    ``pair`` is the opened :class:`~s2m_geo.predict.scene.ScenePair`; it pickles with its grid and
    scaling already computed and reopens its files on the worker.
    """
    model = worker_model(model_path, opts.device, opts.runtime)
    out: list[BlockPartial] = []
    run_tiles(pair, model, layout, [block], opts, out.append)
    return out[0]


def _open_pair(open_pair, pre, post, model: ChangeModel, opts: PredictOptions):
    meta = model.meta
    return open_pair(
        pre,
        post,
        bands=opts.bands or None,
        post_bands=opts.post_bands or None,
        crs=opts.crs,
        resolution=opts.resolution,
        zero_as_nodata=opts.zero_as_nodata,
        model_bands=len(meta.bands["pre"]),
        default_bands=meta.bands,
        scale=Normalization.from_dict(meta.normalization).scale,
    )


# --- the job ------------------------------------------------------------------------------------


def predict(
    pre: str | Path,
    post: str | Path,
    raster: str | Path | None,
    model: str | Path | ChangeModel,
    options: PredictOptions | None = None,
    probabilities: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    client: Any = None,
    sinks: Iterable[Sink] = (),
) -> PredictResult:
    """Predict the change raster of a scene pair into ``raster`` (a COG).

    ``raster`` may be None when only the ``sinks`` matter (e.g. vector output alone).
    ``model`` is a package path (``.safetensors`` or ``.onnx``) or an already loaded
    :class:`~s2m_geo.predict.runners.ChangeModel`. ``sinks`` (:class:`Sink`) get the target
    grid once it is known, then every finished core (the vectorizer is one).
    ``client``: a ``dask.distributed.Client`` to run blocks on its workers (needs a path).
    """
    opts = options or PredictOptions()
    raster = Path(raster) if raster else None
    probabilities = Path(probabilities) if probabilities else None
    model_file = model if isinstance(model, (str, Path)) else None
    outputs = [("raster", raster), ("raster", raster and style_path(raster)), ("probabilities", probabilities)]
    check_outputs(outputs, {"pre": pre, "post": post, "model": model_file}, overwrite)
    with (
        claimed([path for _, path in outputs]),
        published_together(),
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB << 20),
    ):
        return _predict(pre, post, raster, model, opts, probabilities, progress, client, sinks)


def _predict(
    pre: str | Path,
    post: str | Path,
    raster: Path | None,
    model: str | Path | ChangeModel,
    opts: PredictOptions,
    probabilities: Path | None,
    progress: Progress | None,
    client: Any,
    sinks: Iterable[Sink],
) -> PredictResult:
    """:func:`predict` once its outputs are checked and claimed."""
    from .scene import open_pair

    if isinstance(model, (str, Path)):
        runner = load_change_model(model, opts.device, opts.runtime)
    else:
        runner = model
        if client is not None:
            raise ValueError("a Dask client needs the model as a file path, to load it on the workers")
    meta = runner.meta
    tile = opts.tile_size or meta.tile_size
    fixed = getattr(getattr(runner, "onnx", None), "fixed_size", None)
    if fixed is not None and (tile, tile) != tuple(fixed):
        raise InputError(
            f"{runner.name}: the model takes {fixed[0]} x {fixed[1]} tiles only, not {{tile_size}} {tile}; "
            f"drop {{tile_size}} (or pass {{tile_size}} {fixed[0]})",
            params=("tile_size",),
        )
    if tile > MAX_TILE_FACTOR * meta.tile_size:
        raise InputError(
            f"{{tile_size}} {tile}: more than {MAX_TILE_FACTOR}x the model's own tile ({meta.tile_size}); its "
            f"memory grows with the square of the tile (and faster in its attention), so give at most "
            f"{MAX_TILE_FACTOR * meta.tile_size}",
            params=("tile_size",),
        )
    # the model's overlap fits its own tile; a smaller tile asked for alone gets it clamped
    overlap = min(meta.default_overlap, max(tile // 2 - 1, 0)) if opts.overlap is None else opts.overlap
    if not 0 <= overlap < tile // 2:
        raise InputError(
            f"{{overlap}} {overlap}: must be at least 0 and less than half the tile size ({tile})",
            params=("overlap",),
        )
    with _open_pair(open_pair, pre, post, runner, opts) as pair:
        grid = pair.grid
        _check_overlap(pair, tile)
        tile, overlap = _fit_tile(tile, overlap, grid, runner)
        layout = TileLayout(grid.height, grid.width, tile, overlap)
        blocks, by_rows = run_order(pair, layout, opts.block_tiles)
        writer = _Writer(raster, probabilities, grid, runner)
        for sink in sinks:
            sink.start(grid, meta)
            writer.extra_sinks.append(sink)
        try:
            stitcher = Stitcher(
                layout,
                blocks,
                opts.block_tiles,
                runner.num_classes,
                writer.sink,
                want_probabilities=probabilities is not None,
            )
            if client is None:
                with rasterio.Env(GDAL_CACHEMAX=read_cache(pair, blocks, tile, _readers(opts, runner), by_rows)):
                    done, skipped = run_tiles(pair, runner, layout, blocks, opts, stitcher.add, progress)
            else:
                done, skipped = _run_distributed(client, pair, model, layout, blocks, opts, stitcher, progress)
            assert stitcher.done
            writer.close()
            if progress:
                progress("write", 0, 1)
            if raster is not None:
                assert writer.tmp_raster is not None
                try:
                    with atomic_path(raster) as final_tmp:
                        pixels = grid.width * grid.height
                        if pixels > SPARSE_MIN_PIXELS and writer.written <= SPARSE_WRITTEN * pixels:
                            _sparse_tiff(writer.tmp_raster, final_tmp)
                        else:
                            _cog(writer.tmp_raster, final_tmp, "NEAREST")
                finally:
                    discard(writer.tmp_raster)
                write_raster_style(raster, meta.class_table)
            if writer.tmp_probs is not None and probabilities is not None:
                publish(writer.tmp_probs, probabilities)
            if progress:
                progress("write", 1, 1)
        except BaseException:
            writer.discard()
            raise
    counts = {c.id: int(writer.counts[c.id]) for c in meta.class_table}
    return PredictResult(raster, probabilities, grid, done, skipped, counts, runner.name)


#: How much larger than the model's own tile a run may ask for (memory, not accuracy, limits it).
MAX_TILE_FACTOR = 2


def _fit_tile(tile: int, overlap: int, grid: Any, runner: ChangeModel) -> tuple[int, int]:
    """A tile larger than the scene is cut to the scene (rounded up to a multiple of 32, as
    models take): a bigger one would only feed the model padding, at the cost of memory that
    grows with its square. A model that takes one tile size only keeps it."""
    fixed = getattr(getattr(runner, "onnx", None), "fixed_size", None)
    side = -(-max(grid.height, grid.width) // 32) * 32
    if fixed is not None or tile <= side:
        return tile, overlap
    return side, min(overlap, max(side // 2 - 1, 0))


def _check_overlap(pair, tile: int) -> None:
    """Refuse footprints that overlap by less than one tile while the scenes are larger: the
    pair most likely does not belong together (scenes smaller than a tile are fine)."""
    g = pair.grid
    native = [pair.native_grid(e) for e in ("pre", "post")]
    for axis, size in (("rows", g.height), ("columns", g.width)):
        dims = [n.height if axis == "rows" else n.width for n in native]
        if size < tile and min(dims) >= tile:
            raise InputError(
                f"{pair.post_path}: overlaps {pair.pre_path} by only {size} {axis} of pixels, "
                f"less than one {tile}-pixel tile; check that the two scenes show the same "
                f"place (or pass a smaller {{tile_size}})",
                params=("tile_size",),
            )


def _run_distributed(client, pair, model, layout, blocks, opts, stitcher, progress):
    from distributed import as_completed

    remote_pair = client.scatter(pair, broadcast=True)
    futures = [client.submit(run_block, remote_pair, str(model), b, layout, opts, pure=False) for b in blocks]
    total = sum(len(b.tiles) for b in blocks)
    done = 0
    try:
        for fut in as_completed(futures):
            partial = fut.result()
            stitcher.add(partial)
            done += len(partial.block.tiles)
            if progress:
                progress("infer", done, total)
    except BaseException:
        client.cancel(futures)
        raise
    return done, 0
