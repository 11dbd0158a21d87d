"""Where in a scene, in numbers: change counts and ground areas per sector of the scene.

docs/design.md §3.4. Two sets of sectors, both in the scene's true-north local frame
(:class:`~s2m_geo.describe.geo.GeoFrame`, azimuthal equidistant, centred on the scene):

* **cells** — the nine cells of the S2M 3×3 rule (``northwest`` … ``center`` … ``southeast``):
  thirds of the frame's true-north extent, the same grid the *where* word is read from
  (the outer cells reach beyond the extent, so nothing falls off the edge);
* **compass** — the eight 45° sectors around the scene centre (``n`` = true bearings
  337.5°–22.5°, ``ne`` = 22.5°–67.5°, … ``nw``); an azimuthal equidistant frame keeps true
  azimuths from its centre, so these are straight wedges there.

Change polygons that reach a sector border are mapped into the frame and split exactly there
(:func:`~s2m_geo.zones.summarize.split_by_zones`): a polygon counts in every sector it
overlaps, its ground area is split, so the areas of either set add up to the scene's changed
area. The others (most of them) are not mapped: their centroid says which cell and sector
holds them whole. Pure: geometries in, numbers out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS

from ..classes import ClassTable
from ..describe.geo import GeoFrame, ground_areas_m2
from ..describe.rules import DIRECTIONS
from .summarize import split_by_zones

#: The nine cells of the 3×3 rule, row-major from the northwest.
CELLS: tuple[str, ...] = DIRECTIONS
#: The eight compass sectors, clockwise from true north.
COMPASS: tuple[str, ...] = ("n", "ne", "e", "se", "s", "sw", "w", "nw")


def cell_polygons(extent: tuple[float, float, float, float]) -> list[Any]:
    """The nine 3×3 cells (row-major from the northwest) over ``extent`` = (e_min, e_max,
    n_min, n_max) in local metres; the outer cells are extended outwards by the extent's size."""
    e0, e1, n0, n1 = extent
    we, hn = e1 - e0, n1 - n0
    es = [e0 - we, e0 + we / 3.0, e0 + 2.0 * we / 3.0, e1 + we]
    ns = [n1 + hn, n1 - hn / 3.0, n1 - 2.0 * hn / 3.0, n0 - hn]
    return [shapely.box(es[c], ns[r + 1], es[c + 1], ns[r]) for r in range(3) for c in range(3)]


def compass_polygons(radius: float) -> list[Any]:
    """The eight 45° wedges around the origin (``n`` first, clockwise), reaching at least
    ``radius`` from it."""
    r = 1.01 * radius / math.cos(math.radians(11.25))  # the outer edges (chords) stay beyond radius

    def at(az: float) -> tuple[float, float]:
        a = math.radians(az)
        return r * math.sin(a), r * math.cos(a)

    return [shapely.Polygon([(0.0, 0.0), at(45.0 * k - 22.5), at(45.0 * k), at(45.0 * k + 22.5)]) for k in range(8)]


@dataclass(frozen=True)
class SectorCounts:
    """Per sector and class id (0..K): change polygons overlapping it and their ground area in it."""

    names: tuple[str, ...]
    counts: np.ndarray  # int64, (sectors, K+1)
    areas: np.ndarray  # float64, (sectors, K+1), m² (CRS units² in image terms)


#: Points per sector border when it is mapped from the local frame into the CRS.
BORDER_POINTS = 1024
#: Consecutive border segments tested against as one box (see :func:`_border_boxes`).
BORDER_RUN = 16


def _to_local(frame: GeoFrame, geoms: np.ndarray) -> np.ndarray:
    def fn(xy: np.ndarray) -> np.ndarray:
        e, n = frame.to_local(xy[:, 0], xy[:, 1])
        return np.column_stack([np.asarray(e, np.float64), np.asarray(n, np.float64)])

    return np.asarray(shapely.transform(geoms, fn), dtype=object)


@lru_cache(maxsize=8)
def _zones(frame: GeoFrame) -> tuple[tuple[str, tuple[str, ...], tuple[Any, ...]], ...]:
    """The frame's two sets of sectors: ``(key, names, polygons in the local frame)``."""
    e0, e1, n0, n1 = frame.extent
    radius = 2.0 * max(abs(e0), abs(e1), abs(n0), abs(n1), 1.0)
    return (("cells", CELLS, tuple(cell_polygons(frame.extent))), ("compass", COMPASS, tuple(compass_polygons(radius))))


@lru_cache(maxsize=8)
def _border_boxes(frame: GeoFrame) -> shapely.STRtree:
    """The sectors' borders of ``frame`` as boxes in its CRS, in a tree (once per frame: the
    mapping of ~17,000 border points costs more than testing a batch of polygons against it).

    The borders are densified in the local frame and mapped into the CRS, where they are
    slightly curved: each mapped segment's bounding box is grown by twice the largest gap
    between the segments and the true border (plus a hair of the scene's size)."""
    e0, e1, n0, n1 = frame.extent
    span = max(e1 - e0, n1 - n0)
    zones = [z for _, _, polys in _zones(frame) for z in polys]
    lines = shapely.segmentize(shapely.boundary(np.asarray(zones, dtype=object)), span / BORDER_POINTS)
    xy, part = shapely.get_coordinates(lines, return_index=True)
    mid = 0.5 * (xy[1:] + xy[:-1])[part[1:] == part[:-1]]  # segment midpoints, local
    x, y = frame.from_local(xy[:, 0], xy[:, 1])
    mx, my = frame.from_local(mid[:, 0], mid[:, 1])
    same = np.flatnonzero(part[1:] == part[:-1])
    gap = np.hypot(mx - 0.5 * (x[same] + x[same + 1]), my - 0.5 * (y[same] + y[same + 1]))
    reach = 2.0 * float(gap.max(initial=0.0)) + 1e-9 * float(np.ptp(x) + np.ptp(y))
    x0, x1 = np.minimum(x[same], x[same + 1]) - reach, np.maximum(x[same], x[same + 1]) + reach
    y0, y1 = np.minimum(y[same], y[same + 1]) - reach, np.maximum(y[same], y[same + 1]) + reach
    # one box per BORDER_RUN segments of a border (their union: a superset still): a box per
    # segment made ~60,000 polygons, ~35 MB
    line = part[same]  # ascending: the coordinates come border by border
    run = (np.arange(same.size) - np.searchsorted(line, line)) // BORDER_RUN
    runs = np.flatnonzero(np.r_[True, (line[1:] != line[:-1]) | (run[1:] != run[:-1])])
    return shapely.STRtree(
        shapely.box(
            np.minimum.reduceat(x0, runs),
            np.minimum.reduceat(y0, runs),
            np.maximum.reduceat(x1, runs),
            np.maximum.reduceat(y1, runs),
        )
    )


def _near_borders(frame: GeoFrame, geoms: np.ndarray) -> np.ndarray:
    """Which geometries (CRS) may come within reach of a sector border: those whose bounding
    box meets one of :func:`_border_boxes`. A superset: a near polygon is only cut exactly."""
    near = np.zeros(len(geoms), bool)
    idx, _ = _border_boxes(frame).query(geoms)
    near[idx] = True
    return near


def scene_sectors(
    frame: GeoFrame,
    geoms: Sequence[Any] | np.ndarray,
    class_ids: Sequence[int] | np.ndarray,
    num_classes: int,
    areas: Sequence[float] | np.ndarray | None = None,
) -> dict[str, SectorCounts]:
    """``{"cells": …, "compass": …}``: the :class:`SectorCounts` of change polygons ``geoms``
    (in the frame's CRS) with ``class_ids``, in the scene's true-north frame.

    ``areas``: the ground areas of ``geoms`` when the caller has them (m², CRS units² in
    image terms; computed otherwise). Only polygons that reach a sector border are mapped
    into the frame and cut there; the others lie in one cell and one sector, found from
    their centroid, with their whole area."""
    g = np.asarray(list(geoms), dtype=object)
    cls = np.asarray(class_ids, dtype=np.int64)
    if frame.image_terms:
        crs, scale = None, abs(frame.transform.determinant)  # local units are pixels
    else:
        assert frame.local_proj is not None
        crs, scale = CRS.from_proj4(frame.local_proj), 1.0
    sets = _zones(frame)
    counts = {key: np.zeros((len(names), num_classes), np.int64) for key, names, _ in sets}
    sums = {key: np.zeros((len(names), num_classes), np.float64) for key, names, _ in sets}
    if g.size:
        if areas is None:
            whole_area = np.asarray(shapely.area(g), np.float64) if frame.image_terms else ground_areas_m2(g, frame.crs)
        else:
            whole_area = np.asarray(areas, dtype=np.float64)
        near = _near_borders(frame, g)
        inner = np.flatnonzero(~near)
        ce, cn = frame.to_local(*shapely.get_coordinates(shapely.centroid(g[inner])).T)
        local = _to_local(frame, g[near])
        for key, _, polys in sets:
            zone = np.full(inner.size, -1, np.int64)
            for z, poly in enumerate(polys):
                zone[shapely.contains_xy(poly, ce, cn)] = z
            assert (zone >= 0).all(), "a change polygon outside every sector"
            np.add.at(counts[key], (zone, cls[inner]), 1)
            np.add.at(sums[key], (zone, cls[inner]), whole_area[inner])
            pieces = split_by_zones(local, polys, crs, area_scale=scale)
            change = np.flatnonzero(near)[pieces.change]
            np.add.at(counts[key], (pieces.zone, cls[change]), 1)
            np.add.at(sums[key], (pieces.zone, cls[change]), pieces.area_m2)
    return {key: SectorCounts(names, counts[key], sums[key]) for key, names, _ in sets}


def sector_columns(sectors: dict[str, SectorCounts], table: ClassTable) -> dict[str, Any]:
    """The ``scenes`` layer's sector columns: ``n_cell_<cell>``, ``area_m2_cell_<cell>``,
    ``n_sector_<n…nw>``, ``area_m2_sector_<n…nw>`` (all change classes together) and
    ``sectors``: JSON ``{"cells": {cell: {class name: [count, area_m2]}}, "compass": …}``
    holding the classes present in each sector."""
    row: dict[str, Any] = {}
    detail: dict[str, dict[str, dict[str, list[float]]]] = {}
    for key, prefix in (("cells", "cell"), ("compass", "sector")):
        s = sectors[key]
        detail[key] = {}
        for i, name in enumerate(s.names):
            row[f"n_{prefix}_{name}"] = int(s.counts[i, 1:].sum())
            row[f"area_m2_{prefix}_{name}"] = round(float(s.areas[i, 1:].sum()), 3)
            per_class = {
                c.name: [int(s.counts[i, c.id]), round(float(s.areas[i, c.id]), 3)]
                for c in table.change_classes
                if s.counts[i, c.id]
            }
            detail[key][name] = per_class
    row["sectors"] = json.dumps(detail)
    return row
