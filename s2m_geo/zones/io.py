"""``s2m-geo zones`` files: read a changes file and a zones file, bring the zones to the
changes' CRS, summarise (:mod:`.summarize`) and write the ``zones`` layer atomically.

Input checks raise :class:`~s2m_geo.errors.InputError` naming the file and the fix
(docs/errors.md); nothing is written before every input has been read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..atomic import discard, publish, temp_path
from ..classes import ClassTable
from ..errors import InputError
from .summarize import OUTLINE_SEGMENTS, ZoneSummary, grid_zones, summarize_zones

#: The layer ``s2m-geo zones`` writes (and the name of its table in a GeoPackage).
ZONES_LAYER = "zones"
_POLYGONAL = ("Polygon", "MultiPolygon", "CurvePolygon", "MultiSurface")


@dataclass
class ChangesInput:
    """The ``changes`` and ``scenes`` layers of a predict/batch output, in one CRS."""

    path: Path
    changes: Any  # GeoDataFrame
    scenes: Any  # GeoDataFrame
    crs: Any


@dataclass
class ZonesInput:
    """Zone polygons as given (their own CRS) and their names."""

    path: Path | None
    zones: Any  # GeoDataFrame (polygonal rows only)
    names: list[str]


def _exists(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} file not found; check the path")


def _layers(path: Path, what: str) -> list[tuple[str, str]]:
    import pyogrio
    from pyogrio.errors import DataSourceError

    try:
        return [(str(n), str(t)) for n, t in pyogrio.list_layers(path)]
    except DataSourceError as exc:
        msg = " ".join(str(exc).split())[:200]
        raise InputError(f"{path}: not a vector file GDAL can read ({msg}); give a GeoPackage as {what}") from None


def _read(path: Path, layer: str | None) -> Any:
    import pyogrio

    return pyogrio.read_dataframe(path, layer=layer)


def read_changes(path: str | Path, table: ClassTable) -> ChangesInput:
    """The ``changes`` and ``scenes`` layers of ``path`` (a ``.gpkg`` from ``predict`` or
    ``batch``; for a single-layer file, the file itself and ``NAME_scenes.EXT`` beside it)."""
    from ..vector.output import scenes_path

    path = Path(path)
    _exists(path, "changes")
    layers = dict(_layers(path, "CHANGES"))
    fix = "give the GeoPackage written by 's2m-geo predict' or 'batch' (all_changes.gpkg)"
    if len(layers) == 1 and path.suffix.lower() != ".gpkg":
        side = scenes_path(path)
        if not side.exists():
            raise InputError(f"{path}: no scenes file {side.name} beside it (the footprints of the imagery); {fix}")
        changes, scenes = _read(path, None), _read(side, None)
    else:
        for name in ("changes", "scenes"):
            if name not in layers:
                raise InputError(f"{path}: has no '{name}' layer (layers: {', '.join(layers) or 'none'}); {fix}")
        changes, scenes = _read(path, "changes"), _read(path, "scenes")
    if "class_id" not in changes.columns:
        raise InputError(f"{path}: the changes layer has no class_id column; {fix}")
    if changes.crs is None or scenes.crs is None:
        raise InputError(f"{path}: has no CRS (image terms: no ground areas); predict on georeferenced scenes")
    if scenes.crs != changes.crs:
        scenes = scenes.to_crs(changes.crs)
    _check_classes(path, changes, table)
    return ChangesInput(path, changes, scenes, changes.crs)


def _check_classes(path: Path, changes: Any, table: ClassTable) -> None:
    """The changes' class ids, categories and change types must be the table's."""
    if changes.empty:
        return
    ids = changes["class_id"].to_numpy()
    bad = ids[(ids < 1) | (ids >= table.num_classes)]
    if bad.size:
        raise InputError(
            f"{path}: class id {int(bad[0])} is not a change class of table '{table.name}' "
            f"(ids 1..{table.num_classes - 1}); pass the class table the changes were made with ({{classes}})",
            params=("classes",),
        )
    if "category" in changes.columns:
        for cid, cat in zip(ids, changes["category"]):
            if cat != table[int(cid)].category:
                raise InputError(
                    f"{path}: class {int(cid)} is '{cat}' there but '{table[int(cid)].category}' in table "
                    f"'{table.name}'; pass the class table the changes were made with ({{classes}})",
                    params=("classes",),
                )


def read_zones(path: str | Path, field: str | None, param: str = "field") -> ZonesInput:
    """The polygons of the first polygon layer of ``path``, named by ``field`` (default:
    their row number, from 1); ``param`` is the parameter that gave ``field``."""
    import pyogrio

    path = Path(path)
    _exists(path, "zones")
    layers = _layers(path, "ZONES")
    poly = [n for n, t in layers if t.removesuffix(" Z").removesuffix(" M").removesuffix(" ZM") in _POLYGONAL]
    unknown = [n for n, t in layers if t in ("Unknown", "Geometry", "GeometryCollection")]
    candidates = poly or unknown
    kinds = ", ".join(f"{n} ({t})" for n, t in layers) or "no layers"
    if not candidates:
        raise InputError(f"{path}: has no polygon layer ({kinds}); give zones as polygons")
    gdf = pyogrio.read_dataframe(path, layer=candidates[0])
    keep = np.array([g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in gdf.geometry], bool)
    if not keep.any():
        raise InputError(f"{path}: has no polygons ({kinds}); give zones as polygons")
    gdf = gdf[keep].reset_index(drop=True)
    if gdf.crs is None:
        raise InputError(f"{path}: has no CRS; set the zones' CRS (e.g. ogr2ogr -a_srs EPSG:4326 out.gpkg in.gpkg)")
    if field is None:
        names = [str(i + 1) for i in range(len(gdf))]
    elif field not in gdf.columns or field == gdf.geometry.name:
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(
            f"{path}: has no field '{field}' (fields: {', '.join(fields) or 'none'}); pass one of them to "
            + "{"
            + param
            + "}",
            params=(param,),
        )
    else:
        names = ["" if v is None or v != v else str(v) for v in gdf[field]]
    return ZonesInput(path, gdf, names)


def grid_input(changes: ChangesInput, spec: str) -> ZonesInput:
    """A ``ROWSxCOLS`` grid (e.g. ``3x3``) over the bounding box of the scene footprints."""
    import geopandas as gpd

    try:
        rows, cols = (int(v) for v in spec.lower().split("x"))
        if not (1 <= rows <= 26 and 1 <= cols <= 100):
            raise ValueError
    except ValueError:
        raise InputError(
            f"{{grid}} {spec}: give ROWSxCOLS (1-26 rows, 1-100 columns), e.g. 3x3", params=("grid",)
        ) from None
    x0, y0, x1, y1 = (float(v) for v in changes.scenes.total_bounds)
    boxes, names = grid_zones((x0, y0, x1, y1), rows, cols)
    return ZonesInput(None, gpd.GeoDataFrame({"zone": names}, geometry=boxes, crs=changes.crs), names)


def zones_in_crs(zones: Any, crs: Any) -> np.ndarray:
    """The zone polygons in ``crs``; their edges are densified first (to 1/128 of each
    polygon's larger bounding-box side), so long edges keep their course."""
    if zones.crs == crs:
        return np.asarray(zones.geometry.values, dtype=object)
    b = zones.geometry.bounds
    seg = np.maximum(b.maxx - b.minx, b.maxy - b.miny).to_numpy() / OUTLINE_SEGMENTS
    dense = shapely.segmentize(np.asarray(zones.geometry.values, dtype=object), seg)
    import geopandas as gpd

    return np.asarray(gpd.GeoSeries(dense, crs=zones.crs).to_crs(crs).values, dtype=object)


def summarize(changes: ChangesInput, zones: ZonesInput, table: ClassTable) -> list[ZoneSummary]:
    """Per zone of ``zones``: coverage by the scenes, counts, areas and sentences."""
    return summarize_zones(
        changes.changes.geometry.values,
        changes.changes["class_id"].to_numpy(),
        zones_in_crs(zones.zones, changes.crs),
        zones.names,
        changes.scenes.geometry.values,
        changes.crs,
        table,
    )


def zone_rows(merged: str | Path | None, zones: ZonesInput, table: ClassTable) -> list[dict[str, Any]]:
    """The zone table of a batch (``ZoneSummary.to_dict`` per zone) from its merged changes;
    with no merged file (no complete scene) every zone is ``not covered``."""
    if merged is None:
        summaries = summarize_zones([], [], zones.zones.geometry.values, zones.names, [], zones.zones.crs, table)
    else:
        summaries = summarize(read_changes(merged, table), zones, table)
    return [s.to_dict(table) for s in summaries]


def zones_frame(summaries: list[ZoneSummary], zones: ZonesInput, table: ClassTable) -> Any:
    """The ``zones`` layer: each zone's own geometry and CRS with ``zone, status,
    covered_fraction, zone_area_m2, covered_area_m2, scenes, changes, changed_area_m2``,
    ``n_<class>`` / ``area_m2_<class>`` (empty when not covered), ``description``, ``quadruples``."""
    import geopandas as gpd
    import pandas as pd

    rows = []
    for s in summaries:
        d = s.to_dict(table)
        row = {k: d[k] for k in ("zone", "status", "covered_fraction", "zone_area_m2", "covered_area_m2", "scenes")}
        row.update(changes=d["changes"], changed_area_m2=d["changed_area_m2"])
        for c in table.change_classes:
            v = (d["classes"] or {}).get(c.name)
            row[f"n_{c.name}"] = None if v is None else v["count"]
            row[f"area_m2_{c.name}"] = None if v is None else v["area_m2"]
        row.update(description=d["description"], quadruples=json.dumps(d["quadruples"]))
        rows.append(row)
    df = pd.DataFrame(rows)
    ints = ["scenes", "changes"] + [f"n_{c.name}" for c in table.change_classes]
    floats = ["changed_area_m2"] + [f"area_m2_{c.name}" for c in table.change_classes]
    df = df.astype({**{k: "Int64" for k in ints}, **{k: "float64" for k in floats}})
    return gpd.GeoDataFrame(df, geometry=list(zones.zones.geometry.values), crs=zones.zones.crs)


def write_zones(path: str | Path, frame: Any) -> Path:
    """Write the ``zones`` layer to ``path`` (format by extension) under a temporary name, then rename."""
    from ..vector.output import scenes_qml, vector_driver, write_layer_styles

    path = Path(path)
    driver = vector_driver(path)
    multi = any(g.geom_type == "MultiPolygon" for g in frame.geometry)
    tmp = temp_path(path, create=False)
    try:
        if driver == "Parquet":
            frame.to_parquet(tmp)
        else:
            opts: dict[str, Any] = {"layer": ZONES_LAYER} if driver == "GPKG" else {}
            frame.to_file(
                tmp,
                driver=driver,
                engine="pyogrio",
                geometry_type="MultiPolygon" if multi else "Polygon",
                promote_to_multi=multi,
                **opts,
            )
            if driver == "GPKG":
                write_layer_styles(tmp, {ZONES_LAYER: scenes_qml()})
        publish(tmp, path)
    finally:
        discard(tmp)
    return path
