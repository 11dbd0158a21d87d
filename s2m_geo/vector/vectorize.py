"""Change raster -> polygons: one polygon per connected region of one class, streamed by core.

The prediction pipeline finalises the scene in *cores* (disjoint rectangles that partition the
grid, see :mod:`s2m_geo.predict.stitch`), one at a time and in any order. :class:`Vectorizer` is a
sink for them: it labels each core's regions per class (:func:`scipy.ndimage.label`),
polygonises them with :func:`rasterio.features.shapes` (exact pixel edges, holes kept) and
gathers each region's pixel count, confidence sum and pixel row/column sums with
:func:`numpy.bincount`. Class 0 (no change) and 255 (nodata) are never vectorised.

Seams. A region that touches a core edge facing another core may continue there. Its piece
is kept aside together with the piece labels along the core's four border lines. When a
neighbouring core arrives, the pixel pairs that are adjacent across the seam (sharing an
edge; with ``connectivity=8`` also a corner) are read off those border lines: pieces of the
same class on both sides are joined (union-find). Every piece counts the adjacent pixel
pairs it has with pixels outside its core that have not arrived yet; a group of joined
pieces is complete when its count reaches zero, and is then merged with
:func:`shapely.union_all` and emitted. Regions touching no seam are emitted at once. All
geometry work is done in global pixel coordinates (integers, exact in float64), so pieces
meet exactly; the affine transform is applied last, after collinear seam vertices are
removed and the geometry is normalised. The result therefore does not depend on how the
scene is cut into cores nor on their order: it is the same, vertex for vertex, as
vectorising the whole raster as one core.

Memory: one core's arrays while it is processed, plus the border lines of cores whose
neighbours have not all arrived and the pieces of regions that touch such a pending seam.
Finished regions go to ``on_region`` as soon as they are complete (or are collected for
:meth:`Vectorizer.finish`).

Output geometries are in the raster CRS units: a :class:`shapely.Polygon` per region
(a :class:`shapely.MultiPolygon` only with ``connectivity=8``, when parts touch at corners
only), exterior rings counter-clockwise, holes clockwise. Nothing here does file I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes as _shapes
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon

from ..classes import NODATA_CLASS
from ..predict.tiling import Rect

#: Class ids that are never vectorised: 0 = no change, 255 = nodata.
NO_CHANGE_CLASS = 0


@dataclass
class Region:
    """One connected region of one class.

    ``row_sum`` / ``col_sum`` are sums of the (global, 0-based) row and column indices of
    the region's pixels; :attr:`pixel_centroid` turns them into the mean pixel centre in
    grid coordinates, where pixel ``(r, c)`` spans ``[r, r + 1) x [c, c + 1)``, so
    ``transform * (col, row)`` of it is the centroid in CRS units. ``first_pixel`` is the
    region's first pixel in row-major order (it identifies the region on the grid).
    """

    geometry: Polygon | MultiPolygon
    class_id: int
    pixels: int
    confidence_sum: float
    row_sum: int = 0
    col_sum: int = 0
    first_pixel: tuple[int, int] = (0, 0)

    @property
    def confidence(self) -> float:
        """Mean per-pixel confidence of the region."""
        return self.confidence_sum / self.pixels if self.pixels else 0.0

    @property
    def pixel_centroid(self) -> tuple[float, float]:
        """(row, col) of the mean pixel centre, in continuous grid coordinates."""
        return self.row_sum / self.pixels + 0.5, self.col_sum / self.pixels + 0.5


def pixel_area(transform: Affine) -> float:
    """Area of one pixel in CRS units squared."""
    return abs(transform.determinant)


# --- small pure helpers -------------------------------------------------------------------------


@dataclass
class _Piece:
    """The part of a region inside one core, in global pixel coordinates."""

    parts: list[Any]  # Polygons
    class_id: int
    pixels: int
    confidence_sum: float
    row_sum: int
    col_sum: int
    first: int  # row-major index of the first pixel on the scene grid


@dataclass
class _Border:
    """Global piece ids (-1 = none) along the four border lines of an arrived core."""

    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    ring_left: int  # pixels next to the core (same connectivity) that have not arrived


def _area(r: Rect | None) -> int:
    return 0 if r is None else r.height * r.width


def _expand(r: Rect, dr: int, dc: int) -> Rect:
    return Rect(r.row - dr, r.col - dc, r.height + 2 * dr, r.width + 2 * dc)


def _ring_overlap(a: Rect, other: Rect, connectivity: int) -> int:
    """Pixels of ``other`` (disjoint from ``a``) that are neighbours of ``a``."""
    if connectivity == 8:
        return _area(other.intersect(_expand(a, 1, 1)))
    return _area(other.intersect(_expand(a, 1, 0))) + _area(other.intersect(_expand(a, 0, 1)))


def _ring_size(a: Rect, scene: Rect, connectivity: int) -> int:
    """Pixels of the scene outside ``a`` that are neighbours of ``a``."""
    if connectivity == 8:
        return _area(scene.intersect(_expand(a, 1, 1))) - _area(a)
    return _area(scene.intersect(_expand(a, 1, 0))) + _area(scene.intersect(_expand(a, 0, 1))) - 2 * _area(a)


def _perimeter(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Local (rows, cols) of the border pixels of an h x w core, each once."""
    mid = np.arange(1, h - 1)
    rows = [np.zeros(w, np.int64), mid]
    cols = [np.arange(w), np.zeros(mid.size, np.int64)]
    if h > 1:
        rows.append(np.full(w, h - 1))
        cols.append(np.arange(w))
    if w > 1:
        rows.append(mid)
        cols.append(np.full(mid.size, w - 1))
    return np.concatenate(rows), np.concatenate(cols)


def _span(idx: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """How many of idx-1, idx, idx+1 lie in [lo, hi)."""
    out: np.ndarray = np.minimum(idx + 1, hi - 1) - np.maximum(idx - 1, lo) + 1
    return out


def _outside_pairs(core: Rect, scene: Rect, rows: np.ndarray, cols: np.ndarray, connectivity: int) -> np.ndarray:
    """For border pixels (global rows/cols) of ``core``: how many scene pixels outside the
    core are their neighbours."""
    rs, cs = _span(rows, 0, scene.height), _span(cols, 0, scene.width)
    rc, cc = _span(rows, core.row, core.row_end), _span(cols, core.col, core.col_end)
    out: np.ndarray = rs * cs - rc * cc if connectivity == 8 else (rs - rc) + (cs - cc)
    return out


def _clean_ring(coords: np.ndarray) -> np.ndarray:
    """Drop repeated and collinear vertices of a closed ring."""
    pts = coords[:-1]
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    pts = pts[keep] if keep.any() else pts[:1]
    d_in = pts - np.roll(pts, 1, axis=0)
    d_out = np.roll(pts, -1, axis=0) - pts
    cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
    pts = pts[cross != 0]
    return np.vstack([pts, pts[:1]])


def _clean(geom: Any) -> Any:
    """Remove the collinear vertices a union leaves where seams met the outline."""
    polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    out = [
        Polygon(_clean_ring(np.asarray(p.exterior.coords)), [_clean_ring(np.asarray(r.coords)) for r in p.interiors])
        for p in polys
    ]
    return MultiPolygon(out) if isinstance(geom, MultiPolygon) else out[0]


def _pixel_geometry(parts: list[Any]) -> Any:
    """Pixel-space polygons of one region -> one geometry (seam vertices removed)."""
    if len(parts) == 1:
        return parts[0]  # GDAL's polygons carry corner vertices only
    return _clean(shapely.union_all(parts))


def _to_crs(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Canonical form, then pixel -> CRS coordinates, exteriors counter-clockwise.

    Element-wise arithmetic (no matrix product, whose rounding could depend on the batch),
    so a vertex maps to the same coordinates whichever core or batch it came from."""
    a, b, c, d, e, f = transform[:6]

    def affine(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.stack([(a * x + b * y) + c, (d * x + e * y) + f], axis=1)

    geoms = shapely.transform(shapely.normalize(geoms), affine)
    out: np.ndarray = shapely.orient_polygons(geoms, exterior_cw=False)
    return out


def _polygonize(labels: np.ndarray, row: int, col: int) -> dict[int, list[Any]]:
    """Label image -> {label: [Polygon, ...]} in global pixel coordinates (exact edges).

    Always 4-connected tracing: an 8-connected region comes out as its 4-connected parts."""
    coords: list[Any] = []
    ring_ends = [0]
    poly_ends = [0]
    values = []
    for geom, value in _shapes(labels, mask=labels > 0, connectivity=4, transform=Affine.translation(col, row)):
        for ring in geom["coordinates"]:
            coords.extend(ring)
            ring_ends.append(len(coords))
        poly_ends.append(len(ring_ends) - 1)
        values.append(int(value))
    if not values:
        return {}
    # from the flat floats: a list of (x, y) tuples is ~3x slower through np.asarray
    xy = np.fromiter(chain.from_iterable(coords), np.float64, count=2 * len(coords)).reshape(-1, 2)
    polys = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        xy,
        (np.asarray(ring_ends, np.int64), np.asarray(poly_ends, np.int64)),
    )
    out: dict[int, list[Any]] = {}
    for v, g in zip(values, polys):
        out.setdefault(v, []).append(g)
    return out


#: Rows of a label image scanned at a time for its regions' first pixels (bounds the
#: temporaries: ~17 bytes per labelled pixel of the strip).
SCAN_ROWS = 256


def _first_pixels(
    labels: np.ndarray, n: int, classes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat index of each label's first pixel, its class, from ``classes``; index 0 unused),
    and the labels that hold pixels of another class than their first one (with ``classes``).
    :func:`scipy.ndimage.label` numbers regions in the order of their first pixel, so a label's
    first pixel is where the running maximum of the labels grows; scanned strip by strip."""
    h, w = labels.shape
    first = np.zeros(n + 1, np.int64)
    klass = np.zeros(n + 1, np.int64)
    mixed = np.zeros(n + 1, bool)
    top = 0  # the largest label seen so far
    for r in range(0, h, SCAN_ROWS):
        flat = labels[r : r + SCAN_ROWS].ravel()
        idx = np.flatnonzero(flat)
        if not idx.size:
            continue
        lab = flat[idx]
        before = np.empty_like(lab)
        before[0] = top
        np.maximum.accumulate(lab[:-1], out=before[1:])
        np.maximum(before, top, out=before)
        new = np.flatnonzero(lab > before)
        first[lab[new]] = idx[new] + r * w
        top = max(top, int(lab.max()))
        if classes is not None:
            cls = classes[r : r + SCAN_ROWS].ravel()[idx]
            klass[lab[new]] = cls[new]
            mixed[lab[cls != klass[lab]]] = True
    return first, klass, np.flatnonzero(mixed)


def _label_each_class(classes: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_label` by labelling every class present over the whole core."""
    present = np.flatnonzero(np.bincount(classes.ravel(), minlength=256))
    labels = np.zeros(classes.shape, np.int32)
    lab = np.empty(classes.shape, np.int32)  # one class's labels, reused: no arrays per class
    this = np.empty(classes.shape, bool)
    label_class = [0]
    for k in present.tolist():
        if k in (NO_CHANGE_CLASS, NODATA_CLASS):
            continue
        np.equal(classes, k, out=this)
        m = int(ndimage.label(this, structure, output=lab))
        np.add(lab, len(label_class) - 1, out=labels, where=this)
        label_class.extend([k] * m)
    return labels, np.asarray(label_class, np.int64)


#: Above this many pixels of another class beside a core's changed pixels (to their right and
#: below, per changed pixel), :func:`_label` labels every class over the whole core at once
#: (speckled output, where most regions touch one of another class).
MIXED_SHARE = 0.05


def _touching_share(classes: np.ndarray, changed: np.ndarray) -> float:
    """Changed pixels beside one of another changed class (right, below), per changed pixel."""
    count = 0
    for a, b, ca, cb in (
        (classes[:, 1:], classes[:, :-1], changed[:, 1:], changed[:, :-1]),
        (classes[1:], classes[:-1], changed[1:], changed[:-1]),
    ):
        diff = np.not_equal(a, b)
        diff &= ca
        diff &= cb
        count += int(np.count_nonzero(diff))
    return count / max(int(np.count_nonzero(changed)), 1)


def _label(classes: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class connected regions -> (int32 label image, 0 = none; class of each label,
    index 0 unused). Labels are ordered by class, then by first pixel (row-major).

    One labelling of all changed pixels, whatever their class: regions of different classes
    that touch come out joined, and only those are labelled again, class by class inside
    their bounding box; a pass per class over the whole core cost ~2x more where a scene
    has several classes. Where classes touch often (:data:`MIXED_SHARE`), every class is
    labelled over the whole core."""
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    changed = np.not_equal(classes, NO_CHANGE_CLASS)
    changed &= classes != NODATA_CLASS
    if _touching_share(classes, changed) > MIXED_SHARE:
        return _label_each_class(classes, structure)
    labels = np.empty(classes.shape, np.int32)
    n = int(ndimage.label(changed, structure, output=labels))
    del changed
    if n == 0:
        return labels, np.zeros(1, np.int64)
    first, klass, mixed = _first_pixels(labels, n, classes)
    if mixed.size:  # the joined regions of several classes, labelled again class by class
        is_mixed = np.zeros(n + 1, bool)
        is_mixed[mixed] = True
        inside = is_mixed[labels]
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        inside, sub_classes, sub_labels = inside[box], classes[box], labels[box]
        r0, c0, w = rows[0], cols[0], classes.shape[1]
        part = np.empty(inside.shape, bool)
        sub = np.empty(inside.shape, np.int32)
        extra_first: list[np.ndarray] = []
        extra_class: list[np.ndarray] = []
        for k in np.unique(sub_classes[inside]).tolist():
            np.equal(sub_classes, k, out=part)
            part &= inside
            nk = int(ndimage.label(part, structure, output=sub))
            rr, cc = np.divmod(_first_pixels(sub, nk)[0][1:], inside.shape[1])
            np.add(sub, len(klass) + sum(map(len, extra_first)) - 1, out=sub_labels, where=part)
            extra_first.append((rr + r0) * w + cc + c0)
            extra_class.append(np.full(nk, k, np.int64))
        klass[mixed] = 256  # labels no pixel has any more: sorted last, dropped
        first = np.concatenate([first, *extra_first])
        klass = np.concatenate([klass, *extra_class])
    # renumbered by class, then first pixel, as labelling class by class numbers them
    order = np.lexsort((first[1:], klass[1:])) + 1
    kept = order[klass[order] < 256]
    if mixed.size or np.any(np.diff(kept) < 0):
        new = np.zeros(len(klass), np.int32)
        new[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
        labels = new[labels]
    label_class = np.zeros(kept.size + 1, np.int64)
    label_class[1:] = klass[kept]
    return labels, label_class


# --- the streaming vectorizer -------------------------------------------------------------------


class Vectorizer:
    """Polygonise a class raster delivered as disjoint cores, in any order.

    ``add(core, classes, confidence)`` for every core (the instance is also callable with
    the stitcher's sink signature ``(core, classes, confidence, probabilities)``), then
    :meth:`finish`. With ``on_region``, every region is handed to it as soon as it is
    complete (regions not touching a pending seam: when their core arrives) and
    :meth:`finish` returns an empty list; without, :meth:`finish` returns all regions,
    ordered by their first pixel. Thread-safe (one core at a time).
    """

    def __init__(
        self,
        transform: Affine,
        height: int,
        width: int,
        connectivity: int = 4,
        on_region: Callable[[Region], None] | None = None,
    ) -> None:
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        if height <= 0 or width <= 0:
            raise ValueError(f"empty grid {height}x{width}")
        self.transform = transform
        self.height = height
        self.width = width
        self.connectivity = connectivity
        self.on_region = on_region
        self.scene = Rect(0, 0, height, width)
        self._lock = threading.Lock()
        self._next_id = 0
        self._pieces: dict[int, _Piece] = {}
        self._parent: dict[int, int] = {}
        self._open: dict[int, int] = {}  # root -> adjacent pairs with pixels not yet arrived
        self._members: dict[int, list[int]] = {}  # root -> pieces
        self._cores: dict[Rect, _Border] = {}
        self._arrived = 0
        self._done: list[Region] = []
        self._finished = False

    # -- bookkeeping visible to callers / tests
    @property
    def pending_pieces(self) -> int:
        """Pieces held because their region may continue into a core not yet arrived."""
        return len(self._pieces)

    @property
    def pending_cores(self) -> int:
        """Arrived cores whose border lines are kept for neighbours not yet arrived."""
        return len(self._cores)

    @property
    def arrived_pixels(self) -> int:
        return self._arrived

    def start(self, grid: object, meta: object) -> None:
        """As a prediction sink: nothing to set up (the grid was given at construction)."""

    def __call__(
        self,
        core: Rect,
        classes: np.ndarray,
        confidence: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
    ) -> None:
        self.add(core, classes, confidence)

    def add(self, core: Rect, classes: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """Vectorise one core: ``classes`` uint8 (h, w); ``confidence`` float (h, w) or None."""
        classes = np.asarray(classes)
        if classes.shape != (core.height, core.width):
            raise ValueError(f"classes shape {classes.shape} does not match core {core}")
        if confidence is not None and np.shape(confidence) != classes.shape:
            raise ValueError(f"confidence shape {np.shape(confidence)} does not match core {core}")
        if core.height <= 0 or core.width <= 0 or self.scene.intersect(core) != core:
            raise ValueError(f"core {core} is empty or outside the {self.height}x{self.width} grid")
        with self._lock:
            if self._finished:
                raise RuntimeError("Vectorizer.add after finish()")
            for other in self._cores:
                if other.intersect(core) is not None:
                    raise ValueError(f"core {core} overlaps core {other}, which has already arrived")
            self._add(core, classes.astype(np.uint8, copy=False), confidence)

    def finish(self) -> list[Region]:
        """Emit every region still held (their missing neighbours never came) and return the
        collected regions (empty with ``on_region``), ordered by first pixel."""
        with self._lock:
            self._emit([self._take_group(r) for r in sorted(self._members)])
            self._cores.clear()
            self._finished = True
            out = sorted(self._done, key=lambda r: r.first_pixel)
            self._done = []
            return out

    # -- internals
    def _add(self, core: Rect, classes: np.ndarray, confidence: np.ndarray | None) -> None:
        h, w = classes.shape
        labels, label_class = _label(classes, self.connectivity)
        n = len(label_class) - 1
        base = self._next_id
        self._next_id += n
        self._arrived += h * w

        # Border lines as global piece ids.
        def gid(line: np.ndarray) -> np.ndarray:
            line = line.astype(np.int64)
            return np.where(line > 0, line - 1 + base, -1)

        border = _Border(
            gid(labels[0, :]),
            gid(labels[-1, :]),
            gid(labels[:, 0]),
            gid(labels[:, -1]),
            _ring_size(core, self.scene, self.connectivity),
        )

        if n:
            # Pairs each piece has with scene pixels outside the core.
            pr, pc = _perimeter(h, w)
            plab = labels[pr, pc]
            sel = plab > 0
            weights = _outside_pairs(core, self.scene, pr[sel] + core.row, pc[sel] + core.col, self.connectivity)
            open_pairs = np.rint(np.bincount(plab[sel], weights=weights, minlength=n + 1)).astype(np.int64)
            self._register(core, labels, label_class, confidence, base, open_pairs)

        # Join with the arrived neighbours.
        touched: set[int] = set()
        for other, ob in list(self._cores.items()):
            if _expand(other, 1, 1).intersect(core) is None:
                continue
            la, lr = self._pairs(other, ob, core, border)
            ob.ring_left -= _ring_overlap(other, core, self.connectivity)
            border.ring_left -= _ring_overlap(core, other, self.connectivity)
            self._resolve(la, lr, touched)
            if ob.ring_left == 0:
                del self._cores[other]
        if border.ring_left > 0:
            self._cores[core] = border
        roots = {self._find(p) for p in touched if p in self._parent}
        self._emit([self._take_group(r) for r in sorted(roots) if self._open[r] == 0])

    def _register(
        self,
        core: Rect,
        labels: np.ndarray,
        label_class: np.ndarray,
        confidence: np.ndarray | None,
        base: int,
        open_pairs: np.ndarray,
    ) -> None:
        h, w = labels.shape
        flat = labels.ravel()
        idx = np.flatnonzero(flat)
        lab = flat[idx]
        n = len(label_class) - 1
        pixels = np.bincount(lab, minlength=n + 1)
        conf: np.ndarray
        if confidence is None:
            conf = np.zeros(n + 1)
        else:
            conf = np.bincount(lab, weights=np.asarray(confidence).ravel()[idx].astype(np.float64), minlength=n + 1)
        rows, cols = np.divmod(idx, w)
        row_sum = np.rint(np.bincount(lab, weights=rows, minlength=n + 1)).astype(np.int64)
        col_sum = np.rint(np.bincount(lab, weights=cols, minlength=n + 1)).astype(np.int64)
        first = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, lab, idx)
        fr, fc = np.divmod(first[1:], w)
        first_g = ((core.row + fr) * self.width + core.col + fc).tolist()
        row_g = (row_sum[1:] + core.row * pixels[1:]).tolist()
        col_g = (col_sum[1:] + core.col * pixels[1:]).tolist()
        classes_l, pixels_l, conf_l = label_class[1:].tolist(), pixels[1:].tolist(), conf[1:].tolist()
        open_l = open_pairs[1:].tolist()
        parts = _polygonize(labels, core.row, core.col)
        final = []
        for i in range(n):
            piece = _Piece(parts[i + 1], classes_l[i], pixels_l[i], conf_l[i], row_g[i], col_g[i], first_g[i])
            if open_l[i] == 0:
                final.append([piece])
            else:
                pid = base + i
                self._pieces[pid] = piece
                self._parent[pid] = pid
                self._open[pid] = open_l[i]
                self._members[pid] = [pid]
        self._emit(final)

    def _pairs(self, a: Rect, ab: _Border, r: Rect, rb: _Border) -> tuple[np.ndarray, np.ndarray]:
        """Piece ids (a side, r side) of every adjacent pixel pair across the a|r seam."""
        offsets = (0,) if self.connectivity == 4 else (-1, 0, 1)
        if a.row_end == r.row or a.row == r.row_end:  # a above / below r (corners included)
            la_line, lr_line = (ab.bottom, rb.top) if a.row_end == r.row else (ab.top, rb.bottom)
            a0, a1, r0, r1 = a.col, a.col_end, r.col, r.col_end
        elif a.col_end == r.col or a.col == r.col_end:  # a left / right of r
            la_line, lr_line = (ab.right, rb.left) if a.col_end == r.col else (ab.left, rb.right)
            a0, a1, r0, r1 = a.row, a.row_end, r.row, r.row_end
        else:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        las, lrs = [], []
        for d in offsets:  # pairs (a at i, r at i + d)
            lo, hi = max(a0, r0 - d), min(a1, r1 - d)
            if lo < hi:
                las.append(la_line[lo - a0 : hi - a0])
                lrs.append(lr_line[lo + d - r0 : hi + d - r0])
        if not las:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(las), np.concatenate(lrs)

    def _resolve(self, la: np.ndarray, lr: np.ndarray, touched: set[int]) -> None:
        """Count the pairs as arrived for the pieces on both sides; join same-class pieces."""
        ids = np.concatenate([la[la >= 0], lr[lr >= 0]])
        if ids.size == 0:
            return
        uniq, counts = np.unique(ids, return_counts=True)
        for p, c in zip(uniq.tolist(), counts.tolist()):
            self._open[self._find(p)] -= c
            touched.add(p)
        both = (la >= 0) & (lr >= 0)
        if both.any():
            for p, q in np.unique(np.stack([la[both], lr[both]], 1), axis=0).tolist():
                if self._pieces[p].class_id == self._pieces[q].class_id:
                    self._union(p, q)

    def _find(self, p: int) -> int:
        parent = self._parent
        root = p
        while parent[root] != root:
            root = parent[root]
        while parent[p] != root:
            parent[p], p = root, parent[p]
        return root

    def _union(self, p: int, q: int) -> None:
        rp, rq = self._find(p), self._find(q)
        if rp == rq:
            return
        if len(self._members[rp]) < len(self._members[rq]):
            rp, rq = rq, rp
        self._parent[rq] = rp
        self._members[rp].extend(self._members.pop(rq))
        self._open[rp] += self._open.pop(rq)

    def _take_group(self, root: int) -> list[_Piece]:
        members = self._members.pop(root)
        self._open.pop(root)
        for p in members:
            del self._parent[p]
        return [self._pieces.pop(p) for p in members]

    def _emit(self, groups: list[list[_Piece]]) -> None:
        """Turn groups of pieces (one region each) into regions and hand them on."""
        if not groups:
            return
        geoms = np.empty(len(groups), object)
        geoms[:] = [_pixel_geometry([g for p in pieces for g in p.parts]) for pieces in groups]
        geoms = _to_crs(geoms, self.transform)
        for pieces, geom in zip(groups, geoms):
            if len(pieces) == 1:  # most regions: no sums to make
                p = pieces[0]
                region = Region(
                    geom,
                    p.class_id,
                    p.pixels,
                    float(p.confidence_sum),
                    p.row_sum,
                    p.col_sum,
                    divmod(p.first, self.width),
                )
            else:
                region = Region(
                    geometry=geom,
                    class_id=pieces[0].class_id,
                    pixels=sum(p.pixels for p in pieces),
                    confidence_sum=float(sum(p.confidence_sum for p in pieces)),
                    row_sum=sum(p.row_sum for p in pieces),
                    col_sum=sum(p.col_sum for p in pieces),
                    first_pixel=divmod(min(p.first for p in pieces), self.width),
                )
            if self.on_region is not None:
                self.on_region(region)
            else:
                self._done.append(region)


# --- whole-array convenience and simplification -------------------------------------------------


def vectorize(
    classes: np.ndarray, confidence: np.ndarray | None = None, transform: Affine | None = None, connectivity: int = 4
) -> list[Region]:
    """Vectorise a whole class raster as one core (regions ordered by first pixel)."""
    classes = np.asarray(classes)
    h, w = classes.shape
    vec = Vectorizer(Affine.identity() if transform is None else transform, h, w, connectivity)
    vec.add(Rect(0, 0, h, w), classes, confidence)
    return vec.finish()


def simplified(geoms: Any, tolerance: float) -> Any:
    """Douglas-Peucker with ``tolerance`` (CRS units), topology preserved so polygons stay
    valid and keep their holes; arrays of geometries are simplified in one call."""
    return shapely.simplify(geoms, tolerance, preserve_topology=True)
