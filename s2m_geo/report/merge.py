"""``all_changes.gpkg``: the ``changes`` and ``scenes`` layers of every complete scene of a
batch, with the same QGIS styles as a single scene's GeoPackage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import discard, publish, temp_path
from ..batch.layout import scene_files

if TYPE_CHECKING:  # pragma: no cover
    from ..batch.results import SceneOutcome
    from ..classes import ClassTable


MERGE_CHUNK_ROWS = 50_000  # rows of the merged layers held in memory at once


def write_merged(path: Path, outcomes: list[SceneOutcome], table: ClassTable) -> Path | None:
    """``all_changes.gpkg``: both layers of every complete scene (appended scene by scene), in
    their common CRS or, when scenes differ, EPSG:4326; QGIS styles as for one scene.
    With no complete scene there is no merged file (a stale one is removed)."""
    import pyogrio
    from pyproj import CRS

    from ..vector.output import changes_qml, scenes_qml, write_layer_styles

    path = Path(path)
    if not outcomes:
        path.unlink(missing_ok=True)
        return None
    files = [scene_files(path.parent, o.scene_id)["gpkg"] for o in outcomes]
    crss = []
    for f in files:
        info = pyogrio.read_info(f, layer="changes")
        crss.append(CRS.from_user_input(info["crs"]) if info.get("crs") else None)
    first = crss[0]
    target = first if all(c == first for c in crss) else CRS.from_epsg(4326)
    tmp = temp_path(path, create=False)  # GDAL creates the file itself
    try:
        for layer in ("changes", "scenes"):
            _append_layer(tmp, layer, outcomes, files, crss, target, first_layer=layer == "changes")
        write_layer_styles(tmp, {"changes": changes_qml(table), "scenes": scenes_qml(table)})
        publish(tmp, path)
    finally:
        discard(tmp)
        for extra in tmp.parent.glob(tmp.name + "-*"):  # SQLite journal of an interrupted write
            extra.unlink(missing_ok=True)
    return path


def _append_layer(
    tmp: Path, layer: str, outcomes: list[SceneOutcome], files: list[Path], crss: list, target, first_layer: bool
) -> None:
    """Append one layer of every scene to ``tmp``, one write per chunk of rows (GeoPackage
    writes cost per call, memory per row held)."""
    import pandas as pd
    import pyogrio

    buffer: list = []
    rows = 0
    written = False
    for i, (o, f, crs) in enumerate(zip(outcomes, files, crss)):
        df = pyogrio.read_dataframe(f, layer=layer)
        if crs is not None and target is not None and crs != target:
            df = df.to_crs(target)
        if layer == "scenes":
            df["pre_date"] = pd.Series([o.job.pre_date] * len(df), dtype=object)
            df["post_date"] = pd.Series([o.job.post_date] * len(df), dtype=object)
        buffer.append(df)
        rows += len(df)
        if rows >= MERGE_CHUNK_ROWS or i == len(outcomes) - 1:
            out = pd.concat(buffer, ignore_index=True) if len(buffer) > 1 else buffer[0]
            out.to_file(
                tmp,
                layer=layer,
                driver="GPKG",
                engine="pyogrio",
                geometry_type="Polygon",
                append=written or not first_layer,
            )
            written = True
            buffer, rows = [], 0
