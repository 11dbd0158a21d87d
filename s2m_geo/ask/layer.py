"""Reading the ``changes`` layer a question is asked of (the I/O side of ``s2m-geo ask``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..classes import ClassTable
from ..errors import InputError
from ..vector.output import vector_driver
from .parse import Query

#: The fields of docs/design.md §3.4 that questions read.
NEEDED = ("category", "change_type", "quantity", "direction", "area_m2", "distance_m")


def _read_errors() -> tuple[type[BaseException], ...]:
    """What GDAL, pyogrio and pyarrow raise for a file they cannot read."""
    import pyarrow
    from pyogrio.errors import DataLayerError, DataSourceError

    return (DataSourceError, DataLayerError, pyarrow.ArrowException, ValueError)


def read_changes(path: str | Path) -> Any:
    """The ``changes`` layer of a GeoPackage, GeoParquet, FlatGeobuf or GeoJSON file as a
    GeoDataFrame (a GeoPackage's feature ids as the index). Raises :class:`InputError`
    for a missing file, an unknown format, a file without a ``changes`` layer or fields."""
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    driver = vector_driver(path)
    if not path.is_file():
        raise InputError(f"{path}: changes file not found; check the path (s2m-geo predict -o writes one)")
    try:
        if driver == "GPKG":
            layers = [str(name) for name, _ in pyogrio.list_layers(path)]
            if "changes" not in layers:
                raise InputError(
                    f"{path}: no 'changes' layer (it has: {', '.join(layers) or 'none'}); give a GeoPackage "
                    "written by s2m-geo predict or batch"
                )
            frame = gpd.read_file(path, layer="changes", engine="pyogrio", fid_as_index=True)
        elif driver == "Parquet":
            frame = gpd.read_parquet(path)
        else:
            frame = gpd.read_file(path, engine="pyogrio")
    except _read_errors() as exc:
        msg = " ".join(str(exc).split())[:200]
        raise InputError(
            f"{path}: not a vector file that can be read ({msg}); give the file s2m-geo predict wrote"
        ) from None
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: not a changes layer (no field {', '.join(missing)}); give the file s2m-geo predict or batch wrote"
        )
    return frame


def rows_of(frame: Any, with_fid: bool) -> list[dict[str, Any]]:
    """The attribute rows as dicts (``fid`` from the index when ``with_fid``)."""
    rows: list[dict[str, Any]] = frame.drop(columns=frame.geometry.name).to_dict("records")
    if with_fid:
        for fid, row in zip(frame.index, rows):
            row["fid"] = int(fid)
    return rows


def check_layer(path: str | Path, frame: Any, query: Query, table: ClassTable) -> str:
    """Refuse a layer the question cannot be answered on; return the unit of ``area_m2``
    (``m²``, or ``px`` for a layer made without a CRS, in image terms)."""
    known = {(c.category, c.change_type) for c in table.change_classes}
    found = set(zip(frame["category"].astype(str), frame["change_type"].astype(str)))
    strange = sorted(found - known)
    if strange:
        labels = ", ".join(f"{t} {c}" for c, t in strange)
        raise InputError(
            f"{path}: holds classes the class table '{table.name}' does not have ({labels}); "
            "pass the table it was made with as {classes}",
            params=("classes",),
        )
    fields = {c.field for c in query.conditions}
    if "distance_m" in fields and len(frame) and frame["distance_m"].isna().all():
        raise InputError(
            f"{path}: has no distances from the centre (made from a raster without a CRS); ask without "
            "'within … of the centre'"
        )
    image_terms = frame.crs is None and len(frame) > 0
    if image_terms and "area_m2" in fields:
        raise InputError(
            f"{path}: areas are in pixels (made from a raster without a CRS), not m²; ask without an area limit"
        )
    return "px" if image_terms else "m²"
