"""Change polygons summarised by zone polygons: counts, ground areas and S2M sentences per zone.

docs/design.md §3.9. Pure: shapely geometries in one CRS in, plain data out (no file I/O).

* **Splitting.** Each change polygon is cut exactly at zone borders
  (:func:`shapely.intersection` on the pairs an :class:`shapely.STRtree` finds). A polygon
  split by a border **counts once in every zone it overlaps** (with a positive area), and
  its **area is split exactly**: the zone gets the ground area of its piece. So areas add
  up over zones that tile the ground (area is conserved), counts need not. Pieces that are
  only lines or points (a polygon touching a border) are not pieces.
* **Areas** are ground areas on WGS84 (:func:`~s2m_geo.describe.geo.ground_areas_m2`);
  with ``crs=None`` they are planar areas times ``area_scale``.
* **Coverage.** A zone's covered fraction is the ground area of its part inside the scene
  footprints divided by its own ground area: 0 → ``not covered`` (no imagery: its counts
  are unknown, not zero), below :data:`FULL_COVER` → ``partly covered``, else ``covered``.
* **Sentences.** Per class present in the zone: the S2M quadruple with *where* from the
  3×3 rule in the zone's own true-north frame (:func:`zone_frame`: azimuthal equidistant,
  centred on the centre of the zone's bounding box, the 3×3 grid on the true-north box
  around the zone), applied to the area-weighted centroid of the class's pieces, and
  *how many* from the class's ground area in the zone (threshold × ``reference_gsd_m``²).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from affine import Affine

from ..classes import ClassTable
from ..describe.geo import GeoFrame, ground_areas_m2
from ..describe.rules import Quadruple, quantity_from_area
from ..describe.templates import NO_CHANGE_SENTENCE, sentence

STATUS_COVERED = "covered"
STATUS_PARTLY = "partly covered"
STATUS_NOT_COVERED = "not covered"
#: A covered fraction at or above this (99.999 %) is full coverage: a zone drawn along a
#: scene's edge in another CRS misses it by millimetres once reprojected (straight edges
#: there are curves here), which must not make it "partly covered".
FULL_COVER = 1.0 - 1e-5
#: The sentence of a zone no scene covers.
NOT_COVERED_SENTENCE = "No imagery covers this zone: its changes are unknown."
#: Points per bounding-box side when a zone's outline is mapped into its true-north frame.
OUTLINE_SEGMENTS = 128


def polygonal(geom: Any) -> Any:
    """The polygonal part of ``geom`` (a Polygon or MultiPolygon), or None when it has none.

    Intersections can give GeometryCollections of polygons, lines and points; only
    polygons with a positive area are kept.
    """
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type == "Polygon":
        return geom if geom.area > 0 else None
    parts = [p for p in shapely.get_parts(geom) if not p.is_empty]
    polys: list[Any] = []
    for p in parts:
        if p.geom_type == "Polygon":
            if p.area > 0:
                polys.append(p)
        elif p.geom_type in ("MultiPolygon", "GeometryCollection"):
            sub = polygonal(p)
            if sub is not None:
                polys.extend(shapely.get_parts(sub))
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def areas_m2(geoms: Sequence[Any] | np.ndarray, crs: Any, area_scale: float = 1.0) -> np.ndarray:
    """Ground area (m², WGS84: :func:`~s2m_geo.describe.geo.ground_areas_m2`) of each geometry;
    planar area × ``area_scale`` when ``crs`` is None."""
    arr = np.asarray(geoms, dtype=object)
    if crs is None:
        return np.asarray(shapely.area(arr), dtype=np.float64) * float(area_scale)
    return ground_areas_m2(arr, crs)


@dataclass(frozen=True)
class Pieces:
    """The parts of change polygons inside zones: one row per (zone, change) overlap."""

    zone: np.ndarray  # int64 zone index of each piece
    change: np.ndarray  # int64 change index of each piece
    geometry: np.ndarray  # object: the polygonal intersection
    area_m2: np.ndarray  # float64 ground area of each piece


def split_by_zones(
    changes: Sequence[Any] | np.ndarray, zones: Sequence[Any] | np.ndarray, crs: Any, area_scale: float = 1.0
) -> Pieces:
    """Cut every change polygon at the zone borders (both in ``crs``); pieces sorted by (zone, change)."""
    ch = np.asarray(changes, dtype=object)
    zn = np.asarray(zones, dtype=object)
    empty = Pieces(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.float64))
    if ch.size == 0 or zn.size == 0:
        return empty
    tree = shapely.STRtree(ch)
    zi, ci = tree.query(zn, predicate="intersects")
    order = np.lexsort((ci, zi))
    zi, ci = np.asarray(zi[order], np.int64), np.asarray(ci[order], np.int64)
    # a change inside its zone is its own piece: only those across a border are cut
    shapely.prepare(zn)
    whole = shapely.contains_properly(zn[zi], ch[ci]) & (shapely.get_type_id(ch[ci]) == 3) & (shapely.area(ch[ci]) > 0)
    geoms = ch[ci].copy()
    cut = np.flatnonzero(~whole)
    geoms[cut] = [polygonal(g) for g in shapely.intersection(zn[zi[cut]], ch[ci[cut]])]
    keep = np.array([g is not None for g in geoms], dtype=bool)
    if not keep.any():
        return empty
    zi, ci, geoms = zi[keep], ci[keep], geoms[keep]
    return Pieces(zi, ci, geoms, areas_m2(geoms, crs, area_scale))


def zone_frame(zone: Any, crs: Any) -> GeoFrame:
    """The zone's own true-north frame: a :class:`GeoFrame` centred on the centre of the
    zone's bounding box, whose extent is the true-north box around the zone's outline."""
    x0, y0, x1, y1 = (float(v) for v in zone.bounds)
    frame = GeoFrame.from_grid(crs, Affine(x1 - x0, 0.0, x0, 0.0, y0 - y1, y1), 1, 1)
    span = max(x1 - x0, y1 - y0)
    outline = shapely.segmentize(shapely.boundary(zone), span / OUTLINE_SEGMENTS)
    xy = shapely.get_coordinates(outline)
    e, n = frame.to_local(xy[:, 0], xy[:, 1])
    return replace(frame, extent=(float(np.min(e)), float(np.max(e)), float(np.min(n)), float(np.max(n))))


@dataclass(frozen=True)
class ZoneSummary:
    """What one zone got: coverage, per-class counts and areas, its S2M sentences."""

    zone: str
    status: str
    covered_fraction: float
    zone_area_m2: float
    covered_area_m2: float
    scenes: int
    #: Per change class id: polygons overlapping the zone (None when not covered).
    counts: dict[int, int] | None
    #: Per change class id: ground area inside the zone, m² (None when not covered).
    areas: dict[int, float] | None
    #: (quadruple, sentence) per class present, by class id.
    items: list[tuple[Quadruple, str]] = field(default_factory=list)
    #: Per class present: the centroid of its pieces in the zone (CRS x, y).
    centroids: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def changes(self) -> int | None:
        """Change polygons overlapping the zone, all classes (None when not covered)."""
        return None if self.counts is None else sum(self.counts.values())

    @property
    def changed_area_m2(self) -> float | None:
        """Changed ground area inside the zone (None when not covered)."""
        return None if self.areas is None else float(sum(self.areas.values()))

    @property
    def description(self) -> str:
        """The zone's sentences, joined; the no-change or not-covered sentence otherwise."""
        if self.status == STATUS_NOT_COVERED:
            return NOT_COVERED_SENTENCE
        return " ".join(s for _, s in self.items) or NO_CHANGE_SENTENCE

    def to_dict(self, table: ClassTable) -> dict[str, Any]:
        """Plain data (JSON): figures, per-class ``{count, area_m2}`` by class name (None
        when not covered), the quadruples and the sentences."""
        classes: dict[str, Any] | None = None
        if self.counts is not None and self.areas is not None:
            classes = {
                c.name: {"count": self.counts[c.id], "area_m2": round(self.areas[c.id], 3)}
                for c in table.change_classes
            }
        changed = self.changed_area_m2
        return {
            "zone": self.zone,
            "status": self.status,
            "covered_fraction": round(self.covered_fraction, 6),
            "zone_area_m2": round(self.zone_area_m2, 3),
            "covered_area_m2": round(self.covered_area_m2, 3),
            "scenes": self.scenes,
            "changes": self.changes,
            "changed_area_m2": None if changed is None else round(changed, 3),
            "classes": classes,
            "quadruples": [
                {
                    "class_id": q.class_id,
                    "category": q.category,
                    "change_type": q.change_type,
                    "quantity": q.quantity,
                    "direction": q.direction,
                    "sentence": s,
                }
                for q, s in self.items
            ],
            "description": self.description,
        }


def coverage(zones: np.ndarray, footprints: Sequence[Any] | np.ndarray, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(covered ground area, number of footprints overlapping) of each zone."""
    fp = np.asarray([g for g in footprints if g is not None and not g.is_empty], dtype=object)
    covered = np.zeros(len(zones), np.float64)
    scenes = np.zeros(len(zones), np.int64)
    if fp.size == 0:
        return covered, scenes
    pieces = split_by_zones(fp, zones, crs)
    np.add.at(scenes, pieces.zone, 1)
    union = shapely.union_all(fp)
    for i in np.unique(pieces.zone):
        covered[i] = areas_m2([polygonal(shapely.intersection(zones[i], union))], crs)[0]
    return covered, scenes


def _status(fraction: float) -> str:
    if fraction <= 0.0:
        return STATUS_NOT_COVERED
    return STATUS_COVERED if fraction >= FULL_COVER else STATUS_PARTLY


def summarize_zones(
    changes: Sequence[Any] | np.ndarray,
    class_ids: Sequence[int] | np.ndarray,
    zones: Sequence[Any] | np.ndarray,
    names: Sequence[str],
    footprints: Sequence[Any] | np.ndarray,
    crs: Any,
    table: ClassTable,
) -> list[ZoneSummary]:
    """One :class:`ZoneSummary` per zone polygon (same order as ``zones``).

    ``changes``: change polygons with their ``class_ids`` (1..K); ``zones``: zone polygons
    named ``names``; ``footprints``: the scenes' footprints. All in ``crs`` (a CRS is needed:
    areas and directions are on the ground).
    """
    if crs is None:
        raise ValueError("summarize_zones needs a CRS")
    zn = np.asarray([polygonal(shapely.make_valid(z)) if z is not None else None for z in zones], dtype=object)
    cls = np.asarray(class_ids, dtype=np.int64)
    valid = np.array([z is not None for z in zn], dtype=bool)
    zone_area = np.zeros(len(zn), np.float64)
    zone_area[valid] = areas_m2(zn[valid], crs)
    covered, scenes = coverage(np.where(valid, zn, shapely.Polygon()), footprints, crs)
    pieces = split_by_zones(changes, np.where(valid, zn, shapely.Polygon()), crs)
    out: list[ZoneSummary] = []
    bounds = np.searchsorted(pieces.zone, np.arange(len(zn) + 1))
    for i, name in enumerate(names):
        fraction = min(1.0, covered[i] / zone_area[i]) if zone_area[i] > 0 else 0.0
        status = _status(fraction)
        base = ZoneSummary(
            str(name), status, fraction, float(zone_area[i]), float(covered[i]), int(scenes[i]), None, None
        )
        if status == STATUS_NOT_COVERED:
            out.append(base)
            continue
        sl = slice(bounds[i], bounds[i + 1])
        out.append(
            _zone_classes(
                base,
                zn[i],
                cls[pieces.change[sl]],
                pieces.change[sl],
                pieces.geometry[sl],
                pieces.area_m2[sl],
                crs,
                table,
            )
        )
    return out


def _zone_classes(
    base: ZoneSummary,
    zone: Any,
    piece_class: np.ndarray,
    piece_change: np.ndarray,
    piece_geom: np.ndarray,
    piece_area: np.ndarray,
    crs: Any,
    table: ClassTable,
) -> ZoneSummary:
    """``base`` with the counts, areas, centroids and sentences of the pieces in its zone."""
    counts = {c.id: 0 for c in table.change_classes}
    areas = {c.id: 0.0 for c in table.change_classes}
    items: list[tuple[Quadruple, str]] = []
    centroids: dict[int, tuple[float, float]] = {}
    frame = zone_frame(zone, crs) if piece_geom.size else None
    for cid in sorted(set(int(c) for c in piece_class)):
        sel = piece_class == cid
        counts[cid] = int(np.unique(piece_change[sel]).size)
        areas[cid] = float(piece_area[sel].sum())
        planar = np.asarray(shapely.area(piece_geom[sel]), np.float64)
        cxy = shapely.get_coordinates(shapely.centroid(piece_geom[sel]))
        w = planar / planar.sum()
        x, y = float(w @ cxy[:, 0]), float(w @ cxy[:, 1])
        centroids[cid] = (x, y)
        assert frame is not None
        c = table[cid]
        q = Quadruple(
            cid,
            c.category,
            c.change_type,
            quantity_from_area(areas[cid], table.reference_gsd_m),
            str(frame.direction(x, y)),
            0,
        )
        items.append((q, sentence(q, table)))
    return replace(base, counts=counts, areas=areas, items=items, centroids=centroids)


def grid_zones(bounds: tuple[float, float, float, float], rows: int, cols: int) -> tuple[list[Any], list[str]]:
    """A ``rows`` × ``cols`` grid of boxes over ``bounds`` (x0, y0, x1, y1), north (max y)
    first, with map-grid names: rows A, B, … from the top, columns 1, 2, … from the left."""
    if rows < 1 or cols < 1 or rows > 26:
        raise ValueError(f"a grid needs 1-26 rows and at least 1 column, got {rows}x{cols}")
    x0, y0, x1, y1 = bounds
    if not (math.isfinite(x1 - x0) and math.isfinite(y1 - y0)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"bounds must have a positive width and height, got {bounds}")
    xs = np.linspace(x0, x1, cols + 1)
    ys = np.linspace(y1, y0, rows + 1)
    boxes, names = [], []
    for r in range(rows):
        for c in range(cols):
            boxes.append(shapely.box(xs[c], ys[r + 1], xs[c + 1], ys[r]))
            names.append(f"{chr(ord('A') + r)}{c + 1}")
    return boxes, names
