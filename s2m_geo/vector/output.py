"""Polygons that talk: change regions with S2M attributes, written as GeoPackage (and more).

Layer ``changes`` — one row per connected region of one class, in the target CRS:
``class_id, category, change_type, quantity, direction, bearing_deg, distance_m, area_m2,
confidence, description, lon, lat, scene_id, model``.

- *where*: the paper's 3×3 rule applied in a north-up, true-north local frame centred on the
  scene (:class:`~s2m_geo.describe.geo.GeoFrame`), to the region's pixel centroid;
  ``bearing_deg``/``distance_m``: true geodesic azimuth and distance from the scene centre;
- *how many*: the paper's thresholds (800/4000/8000 px) as ground areas, threshold ×
  ``reference_gsd_m``²; ``area_m2`` is the true (ellipsoidal) ground area;
- *what*/*how*: from the class table; ``description``: the S2M sentence (template 0).

Layer ``scenes`` — one row per scene: the grid footprint, inputs, model, per-class region
counts and areas, the scene's own S2M sentences (one quadruple per class present), and
counts and areas per 3×3 cell and per compass sector (:mod:`s2m_geo.zones.sectors`).

``.gpkg`` holds both layers plus QGIS styles in ``layer_styles`` (categorised by class with
the table's colours, every field with an alias in words: :data:`CHANGE_ALIASES`,
:func:`scenes_aliases`), so it opens styled. ``.geojson``, ``.fgb`` and ``.parquet`` (GeoParquet)
hold one layer each: ``changes`` in the named file and ``scenes`` beside it as
``NAME_scenes.EXT``. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from ..atomic import discard, publish, temp_path
from ..classes import ClassTable
from ..describe import NO_CHANGE_SENTENCE, Quadruple, sentence
from ..describe.geo import GeoFrame, ground_areas_m2
from ..describe.rules import quantities_from_areas, quantities_from_pixels
from ..errors import InputError
from ..escaping import xml_attr
from ..zones.sectors import CELLS, COMPASS, SectorCounts, scene_sectors, sector_columns
from .spool import read_batches, write_batch
from .vectorize import Region, pixel_area, simplified

#: The ``changes`` layer's columns, in order, with the alias QGIS shows for each (its style's
#: ``<aliases>``): the words an analyst reads in the attribute table, forms and identify results.
CHANGE_ALIASES = {
    "class_id": "Class id",
    "category": "What changed (category)",
    "change_type": "How it changed (change type)",
    "quantity": "Quantity (area class)",
    "direction": "Where in the scene (3×3 cell)",
    "bearing_deg": "Bearing from scene centre (° from true north)",
    "distance_m": "Distance from scene centre (m)",
    "area_m2": "Area (m²)",
    "confidence": "Confidence (0–1)",
    "description": "Description",
    "lon": "Longitude (°)",
    "lat": "Latitude (°)",
    "scene_id": "Scene",
    "model": "Model",
}
CHANGE_COLUMNS = list(CHANGE_ALIASES)
#: The aliases of the ``scenes`` layer's fixed columns; :func:`scenes_aliases` adds the
#: per-class and per-sector ones.
SCENE_ALIASES = {
    "scene_id": "Scene",
    "pre": "Pre scene (file)",
    "post": "Post scene (file)",
    "model": "Model",
    "width": "Width (px)",
    "height": "Height (px)",
    "changes": "Change polygons",
    "changed_area_m2": "Changed area (m²)",
    "direction_terms": "Directions (true north or image)",
    "description": "Description",
    "quadruples": "S2M quadruples (JSON)",
}
COMPASS_WORDS = {
    "n": "north",
    "ne": "northeast",
    "e": "east",
    "se": "southeast",
    "s": "south",
    "sw": "southwest",
    "w": "west",
    "nw": "northwest",
}
VECTOR_SUFFIXES = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": "Parquet",
}


def vector_driver(path: str | Path) -> str:
    """The output format of a vector path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise InputError(f"{path}: unknown vector format '{suffix}'; use .gpkg, .geojson, .fgb or .parquet")
    return VECTOR_SUFFIXES[suffix]


#: Regions described together, in one pass of array operations (bounds the temporaries: the
#: regions held and their description run beside the prediction; 8,192 cost ~20 MB more at the
#: peak of an 8192² scene than 4,096, and a batch's fixed cost is small since the sectors'
#: borders are made once per frame).
DESCRIBE_BATCH = 4096
_FLOAT_COLUMNS = ("bearing_deg", "distance_m", "area_m2", "confidence", "lon", "lat")


#: A batch of ``changes`` rows: each column of :data:`CHANGE_COLUMNS` (numpy arrays for the
#: numbers, NaN where image terms leave a value out; lists of str) and ``geometry`` (WKB).
Rows = dict[str, Any]


#: How each column of a :data:`Rows` batch is held (the spool's kinds, the Arrow types and the
#: empty columns follow from it): numbers, text, or WKB.
COLUMN_KINDS = {
    **dict.fromkeys(CHANGE_COLUMNS, "text"),
    "class_id": "number",
    **dict.fromkeys(_FLOAT_COLUMNS, "number"),
    "geometry": "binary",
}


def changes_schema() -> Any:
    """The ``changes`` layer as Arrow columns (what GDAL's Arrow writer is given)."""
    import pyarrow as pa

    types = {"text": pa.string(), "binary": pa.binary(), "number": pa.float64()}
    return pa.schema([(c, pa.int32() if c == "class_id" else types[k]) for c, k in COLUMN_KINDS.items()])


@dataclass
class ChangeCollector:
    """Turns regions into attribute rows (the vectorizer's ``on_region``).

    Regions are held as they arrive and described :data:`DESCRIBE_BATCH` at a time, all of a
    batch at once: ground areas (:func:`~s2m_geo.describe.geo.ground_areas_m2`), locations
    (:meth:`~s2m_geo.describe.geo.GeoFrame.locations`), quantities and sentences (one per
    distinct quadruple) over arrays, not one call chain per polygon.

    Each described batch (:data:`Rows`) is handed to ``rows`` (:meth:`VectorOutput.add`: the
    collector then keeps no rows, only the scene's sums) or, without ``rows``, kept for
    :meth:`changes_frame`. The scene's sums (per class, per sector) are added batch by batch."""

    frame: GeoFrame
    table: ClassTable
    scene_id: str
    model: str
    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    rows: Callable[[Rows], None] | None = None
    _pending: list[Region] = field(default_factory=list)
    _batches: list[Rows] = field(default_factory=list)  # without ``rows``
    _geometries: list[np.ndarray] = field(default_factory=list)  # without ``rows``
    _count: int = 0
    _sentences: dict[tuple[int, str, str], str] = field(default_factory=dict)
    # per class id: regions, pixels, row and col index sums (exact integers), ground area
    _class_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    _class_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    _sectors: dict[str, SectorCounts] | None = None
    _pixel_area: float = 0.0

    def __post_init__(self) -> None:
        self._pixel_area = pixel_area(self.frame.transform)
        self._class_counts = np.zeros((self.table.num_classes, 4), np.int64)
        self._class_areas = np.zeros(self.table.num_classes, np.float64)

    def __call__(self, region: Region) -> None:
        self._pending.append(region)
        if len(self._pending) >= DESCRIBE_BATCH:
            self._describe()

    def __len__(self) -> int:
        """Rows of the ``changes`` layer so far."""
        self._describe()
        return self._count

    def flush(self) -> None:
        """Describe (and hand to ``rows``) the regions still held."""
        self._describe()

    @property
    def geometries(self) -> np.ndarray:
        """The ``changes`` polygons, in row order (CRS coordinates); not kept with ``rows``."""
        self._kept()
        return np.concatenate(self._geometries) if self._geometries else np.zeros(0, object)

    def batches(self) -> list[Rows]:
        """The ``changes`` rows, batch by batch; not kept with ``rows``."""
        self._kept()
        return list(self._batches)

    def _kept(self) -> None:
        if self.rows is not None:
            raise RuntimeError("the changes rows were handed to `rows`, not kept")
        self._describe()

    def areas_m2(self, geoms: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """True ground areas (pixel area in image units when the raster has no CRS)."""
        if self.frame.image_terms:
            return np.asarray(pixels, np.float64) * self._pixel_area
        return ground_areas_m2(geoms, self.frame.crs)

    def _simplify_tolerance(self) -> float:
        """``simplify_m`` in CRS units (degrees for a geographic CRS, by the latitude scale)."""
        if self.simplify_m > 0 and self.frame.crs is not None and self.frame.crs.is_geographic:
            return self.simplify_m / 111_320.0
        return self.simplify_m

    def quantities(self, areas_m2: np.ndarray, pixels: np.ndarray) -> list[str]:
        if self.frame.image_terms:
            return quantities_from_pixels(pixels)
        return quantities_from_areas(areas_m2, self.table.reference_gsd_m)

    def _sentence(self, class_id: int, quantity: str, direction: str) -> str:
        key = (class_id, quantity, direction)
        if key not in self._sentences:
            c = self.table[class_id]
            self._sentences[key] = sentence(
                Quadruple(class_id, c.category, c.change_type, quantity, direction, 0), self.table
            )
        return self._sentences[key]

    def _describe(self) -> None:
        """Describe the held regions, all at once."""
        regions, self._pending = self._pending, []
        if not regions:
            return
        geoms = np.empty(len(regions), object)
        geoms[:] = [r.geometry for r in regions]
        stats = np.array([(r.class_id, r.pixels, r.row_sum, r.col_sum) for r in regions], np.int64).reshape(-1, 4)
        conf = np.array([r.confidence_sum for r in regions], np.float64)
        del regions
        areas = self.areas_m2(geoms, stats[:, 1])
        keep = areas >= self.min_area_m2
        if not keep.all():
            geoms, stats, conf, areas = geoms[keep], stats[keep], conf[keep], areas[keep]
        if not len(geoms):
            return
        tolerance = self._simplify_tolerance()
        if tolerance > 0:
            geoms = simplified(geoms, tolerance)
        cid, pixels, row_sum, col_sum = stats.T
        n = len(geoms)
        loc = self.frame.locations(row_sum / pixels + 0.5, col_sum / pixels + 0.5)
        quantity = self.quantities(areas, pixels)
        cid_l = cid.tolist()
        names = [self.table[c] for c in cid_l]

        batch: Rows = {
            "class_id": cid.astype(np.int32),
            "category": [c.category for c in names],
            "change_type": [c.change_type for c in names],
            "quantity": quantity,
            "direction": list(loc["direction"]),
            "bearing_deg": _rounded(loc["bearing_deg"], 3, n),
            "distance_m": _rounded(loc["distance_m"], 3, n),
            "area_m2": _rounded(areas, 3),
            "confidence": _rounded(conf / pixels, 4),
            "description": list(map(self._sentence, cid_l, quantity, loc["direction"])),
            "lon": _rounded(loc["lon"], None, n),
            "lat": _rounded(loc["lat"], None, n),
            "scene_id": [self.scene_id] * n,
            "model": [self.model] * n,
            "geometry": shapely.to_wkb(geoms),
        }
        self._add_sectors(geoms, cid, None if tolerance > 0 else areas)
        np.add.at(self._class_counts, cid, np.column_stack([np.ones_like(cid), pixels, row_sum, col_sum]))
        np.add.at(self._class_areas, cid, areas)
        self._count += n
        if self.rows is not None:
            self.rows(batch)
        else:
            self._batches.append(batch)
            self._geometries.append(geoms)

    def _add_sectors(self, geoms: np.ndarray, class_ids: np.ndarray, areas: np.ndarray | None) -> None:
        """Add a batch to the scene's counts per 3×3 cell and compass sector. A row's area is
        that of its outline before simplifying: with a simplified outline the sectors
        measure what they count (``areas`` None), as they measure the pieces they cut."""
        sectors = scene_sectors(self.frame, geoms, class_ids, self.table.num_classes, areas=areas)
        if self._sectors is None:
            self._sectors = sectors
            return
        for key, s in sectors.items():
            total = self._sectors[key]
            np.add(total.counts, s.counts, out=total.counts)
            np.add(total.areas, s.areas, out=total.areas)

    def _quantity(self, area_m2: float, pixels: int) -> str:
        return self.quantities(np.array([area_m2]), np.array([pixels]))[0]

    def scene_quadruples(self) -> list[tuple[Quadruple, str, dict[str, Any]]]:
        """The scene's own S2M quadruples: one per class present (pixel centroid of all its
        regions, quantity from its total ground area)."""
        self._describe()
        present = np.flatnonzero(self._class_counts[:, 0])
        if not present.size:
            return []
        regions, pixels, rsum, csum = self._class_counts[present].T
        loc = self.frame.locations(rsum / pixels + 0.5, csum / pixels + 0.5)
        out = []
        for i, cid in enumerate(present.tolist()):
            area = float(self._class_areas[cid])
            cls = self.table[cid]
            q = Quadruple(
                cid,
                cls.category,
                cls.change_type,
                self._quantity(area, int(pixels[i])),
                loc["direction"][i],
                int(pixels[i]),
            )
            out.append((q, sentence(q, self.table), {"area_m2": area, "regions": int(regions[i])}))
        return out

    def changes_frame(self):
        """The ``changes`` layer as a GeoDataFrame (schema fixed even when empty); not kept
        with ``rows``."""
        import geopandas as gpd
        import pandas as pd

        batches = self.batches()
        data = {c: _concat([b[c] for b in batches], c) for c in CHANGE_COLUMNS}
        df = pd.DataFrame(data, columns=CHANGE_COLUMNS)
        geometry = gpd.GeoSeries(self.geometries, crs=self.frame.crs, dtype="geometry")
        return gpd.GeoDataFrame(df, geometry=geometry, crs=self.frame.crs)

    def sectors_row(self) -> dict[str, Any]:
        """Counts and areas per 3×3 cell and per compass sector (:mod:`s2m_geo.zones.sectors`)."""
        self._describe()
        sectors = self._sectors
        if sectors is None:  # no change polygon
            sectors = scene_sectors(self.frame, np.zeros(0, object), np.zeros(0, np.int64), self.table.num_classes)
        return sector_columns(sectors, self.table)

    def scenes_frame(self, pre: str | Path, post: str | Path) -> Any:
        """The ``scenes`` layer: one row, the grid footprint with the scene summary."""
        import geopandas as gpd

        f = self.frame
        corners = [f.transform * (c, r) for c, r in ((0, 0), (f.width, 0), (f.width, f.height), (0, f.height))]
        quads = self.scene_quadruples()
        row: dict[str, Any] = {
            "scene_id": self.scene_id,
            "pre": str(pre),
            "post": str(post),
            "model": self.model,
            "width": f.width,
            "height": f.height,
            "changes": int(self._class_counts[:, 0].sum()),
            "changed_area_m2": round(float(self._class_areas.sum()), 3),
            "direction_terms": "image" if f.image_terms else "true north",
            "description": " ".join(s for _, s, _ in quads) or NO_CHANGE_SENTENCE,
            "quadruples": json.dumps(
                [
                    {
                        "class_id": q.class_id,
                        "category": q.category,
                        "change_type": q.change_type,
                        "quantity": q.quantity,
                        "direction": q.direction,
                        "sentence": s,
                    }
                    for q, s, _ in quads
                ]
            ),
        }
        for c in self.table.change_classes:
            n = int(self._class_counts[c.id, 0])
            row[f"n_{c.name}"] = n
            row[f"area_m2_{c.name}"] = round(float(self._class_areas[c.id]), 3) if n else 0.0
        row.update(self.sectors_row())
        return gpd.GeoDataFrame([row], geometry=[Polygon(corners)], crs=f.crs)


def _concat(parts: list[Any], column: str) -> Any:
    """One column of several batches (typed, even when there are none)."""
    if COLUMN_KINDS[column] != "number":
        return [v for p in parts for v in p]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32 if column == "class_id" else np.float64)


def _rounded(values: Any, digits: int | None, n: int = 0) -> np.ndarray:
    """Python's ``round`` (correctly rounded, unlike ``np.round``) of each value; NaN for
    None (a column image terms leave empty)."""
    if values is None:
        return np.full(n, np.nan)
    v = np.asarray(values, np.float64)
    if digits is None:
        return v
    scaled = v * 10.0**digits
    out = np.rint(scaled) / 10.0**digits  # the same double as round() unless near a half
    near_half = np.maximum(1e-6, 8.0 * np.spacing(np.abs(scaled)))
    tie = np.flatnonzero(~(np.abs(scaled - np.floor(scaled) - 0.5) > near_half))  # and NaN
    out[tie] = [round(x, digits) for x in v[tie].tolist()]
    return out


def scenes_aliases(table: ClassTable) -> dict[str, str]:
    """Every column of the ``scenes`` layer, in order, with its alias in QGIS."""
    aliases = dict(SCENE_ALIASES)
    for c in table.change_classes:
        label = c.label[:1].upper() + c.label[1:]
        aliases[f"n_{c.name}"] = f"{label} (polygons)"
        aliases[f"area_m2_{c.name}"] = f"{label} (m²)"
    places = [("cell", n, f"{n} cell") for n in CELLS] + [("sector", n, f"{COMPASS_WORDS[n]} sector") for n in COMPASS]
    for prefix, name, where in places:
        aliases[f"n_{prefix}_{name}"] = f"Changes in the {where} (polygons)"
        aliases[f"area_m2_{prefix}_{name}"] = f"Changed area in the {where} (m²)"
    aliases["sectors"] = "Changes per cell and sector, by class (JSON)"
    return aliases


# --- QGIS styles ----------------------------------------------------------------------------------


def _rgba(color: str, alpha: int = 255) -> str:
    h = color.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def _fill_symbol(name: str, fill: str, outline: str, style: str = "solid", width: float = 0.4) -> str:
    props = {
        "color": fill,
        "style": style,
        "outline_color": outline,
        "outline_style": "solid",
        "outline_width": str(width),
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
    }
    body = "".join(f"<prop k={xml_attr(k)} v={xml_attr(v)}/>" for k, v in props.items())
    return (
        f'<symbol type="fill" name={xml_attr(name)} alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="SimpleFill" enabled="1" locked="0" pass="0">{body}</layer></symbol>'
    )


def _aliases_qml(aliases: dict[str, str]) -> str:
    body = "".join(f"<alias field={xml_attr(f)} name={xml_attr(a)}/>" for f, a in aliases.items())
    return f"<aliases>{body}</aliases>"


def changes_qml(table: ClassTable) -> str:
    """A QGIS style: categorised by ``class_id`` with the class table's colours; the fields'
    aliases (:data:`CHANGE_ALIASES`)."""
    cats, syms = [], []
    for i, c in enumerate(table.change_classes):
        cats.append(f'<category render="true" value="{c.id}" label={xml_attr(c.label)} symbol="{i}"/>')
        syms.append(_fill_symbol(str(i), _rgba(c.color, 150), _rgba(c.color)))
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
        '<qgis version="3.22.0" styleCategories="Symbology|Labeling|Fields">'
        '<renderer-v2 type="categorizedSymbol" attr="class_id" symbollevels="0" enableorderby="0" '
        f'forceraster="0"><categories>{"".join(cats)}</categories><symbols>{"".join(syms)}</symbols>'
        f"</renderer-v2>{_aliases_qml(CHANGE_ALIASES)}</qgis>"
    )


def scenes_qml(table: ClassTable | None = None) -> str:
    """A QGIS style for the scene footprints: outline only; with ``table``, the ``scenes``
    layer's aliases (:func:`scenes_aliases`)."""
    aliases = _aliases_qml(scenes_aliases(table)) if table is not None else ""
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
        f'<qgis version="3.22.0" styleCategories="Symbology{"|Fields" if aliases else ""}">'
        '<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0"><symbols>'
        f"{_fill_symbol('0', '0,0,0,0', '40,40,40,255', style='no', width=0.6)}</symbols>"
        f"</renderer-v2>{aliases}</qgis>"
    )


def write_layer_styles(gpkg: Path, styles: dict[str, str]) -> None:
    """Store default QGIS styles in the GeoPackage's ``layer_styles`` table (QGIS's schema)."""
    con = sqlite3.connect(gpkg)
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256), "
            "f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT, "
            "useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
            "update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        con.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
            "VALUES ('layer_styles', 'attributes', 'layer_styles')"
        )
        for layer, qml in styles.items():
            geom_col = con.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
            ).fetchone()
            con.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description) "
                "VALUES ('', '', ?, ?, ?, ?, '', 1, 's2m-geo default style')",
                (layer, geom_col[0] if geom_col else "geom", layer, qml),
            )
        con.commit()
    finally:
        con.close()


# --- writing --------------------------------------------------------------------------------------


def scenes_path(path: Path) -> Path:
    """Where a single-layer format puts the ``scenes`` layer."""
    return path.with_name(f"{path.stem}_scenes{path.suffix}")


def gdal_crs(crs: Any) -> str | None:
    """A CRS as GDAL is given it when a layer is written (``EPSG:n`` where it is one, else
    WKT1), as GeoPandas gives it: the files are those ``to_file`` writes."""
    if crs is None:
        return None
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt("WKT1_GDAL")


class VectorOutput:
    """A vector output (format by extension) written atomically: the ``changes`` rows as they
    are described (:meth:`add`), the ``scenes`` layer and QGIS styles at :meth:`finish`, which
    publishes the files. Without :meth:`finish` (an error, an interrupt) :meth:`discard`
    leaves nothing; as a context manager it does that on the way out.

    The rows go to a spool beside the output (:mod:`~s2m_geo.vector.spool`, under a temporary
    name of the output), so no run holds them all, and become the layer at
    :meth:`finish` in one pass of GDAL's (pyogrio's) Arrow writer, which builds the
    GeoPackage's spatial index once. Arrow and pyogrio's GDAL are loaded only then, when the
    prediction's own buffers are gone: beside rasterio's GDAL they cost ~200 MB of resident
    memory, which the prediction's peak need not carry. (Parquet is written from the whole
    table, as GeoPandas writes it.)"""

    def __init__(self, path: str | Path, table: ClassTable, crs: Any) -> None:
        self.path, self.table, self.crs = Path(path), table, crs
        self.driver = vector_driver(self.path)
        self._made: list[tuple[Path, Path]] = []
        # a temporary name of the output itself: what a killed run leaves is swept with it
        self._spool = temp_path(self.path)
        self._file = open(self._spool, "wb")  # closed by finish or discard
        self._done = False

    def __enter__(self) -> VectorOutput:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._done:
            self.discard()

    def add(self, rows: Rows) -> None:
        """A batch of rows of the ``changes`` layer, in order."""
        write_batch(self._file, [(kind, rows[c]) for c, kind in COLUMN_KINDS.items()])

    def _write_changes(self, tmp: Path) -> None:
        """The spooled rows into the ``changes`` layer at ``tmp``."""
        import pyarrow as pa

        schema = changes_schema()
        self._file.close()
        batches = read_batches(self._spool, schema)
        if self.driver == "Parquet":
            import geopandas as gpd

            table = pa.Table.from_batches(list(batches), schema)
            geometry = gpd.GeoSeries.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False), crs=self.crs)
            frame = gpd.GeoDataFrame(table.drop_columns(["geometry"]).to_pandas(), geometry=geometry, crs=self.crs)
            frame.to_parquet(tmp)
            return
        from pyogrio.raw import write_arrow

        write_arrow(
            pa.RecordBatchReader.from_batches(schema, batches),
            str(tmp),
            # a one-layer format names its layer after the file (not the temporary name)
            layer="changes" if self.driver == "GPKG" else self.path.stem,
            driver=self.driver,
            geometry_name="geometry",
            geometry_type="Polygon",
            crs=gdal_crs(self.crs),
            # GeoPackage 1.2: QGIS 3.22 warns that 1.4 "may only be partially supported"
            dataset_options={"VERSION": "1.2"} if self.driver == "GPKG" else None,
        )

    def finish(self, scenes: Any) -> list[Path]:
        """Write the ``changes`` layer, the ``scenes`` one (a GeoDataFrame) and the styles, and
        publish; the files made."""
        tmp = temp_path(self.path, create=False)  # GDAL drivers create the file themselves
        self._made.append((tmp, self.path))
        self._write_changes(tmp)
        discard(self._spool)
        if self.driver == "GPKG":
            scenes.to_file(
                tmp,
                layer="scenes",
                driver="GPKG",
                engine="pyogrio",
                append=True,
                geometry_type="Polygon",
                use_arrow=True,
            )
            write_layer_styles(tmp, {"changes": changes_qml(self.table), "scenes": scenes_qml(self.table)})
        else:
            final = scenes_path(self.path)
            tmp = temp_path(final, create=False)
            self._made.append((tmp, final))
            if self.driver == "Parquet":
                scenes.to_parquet(tmp)
            else:
                scenes.to_file(tmp, layer=final.stem, driver=self.driver, engine="pyogrio", geometry_type="Polygon")
        for tmp, final in self._made:
            publish(tmp, final)
        self._done = True
        return [final for _, final in self._made]

    def discard(self) -> None:
        """Remove what was written."""
        try:
            self._file.close()
        finally:
            discard(self._spool)
            for tmp, _ in self._made:
                discard(tmp)
                for extra in tmp.parent.glob(tmp.name + "-*"):  # SQLite journal of an interrupted write
                    extra.unlink(missing_ok=True)
            self._done = True


def write_vectors(path: str | Path, collector: ChangeCollector, pre: str | Path, post: str | Path) -> list[Path]:
    """Write the rows a ``collector`` kept and its ``scenes`` row (for ``pre``/``post``) to
    ``path`` (format by extension) atomically; return the files made."""
    with VectorOutput(path, collector.table, collector.frame.crs) as out:
        for rows in collector.batches():
            out.add(rows)
        return out.finish(collector.scenes_frame(pre, post))


def write_changes(path: str | Path, changes, table: ClassTable) -> Path:
    """Write a ``changes`` layer alone to ``path`` (format by extension) atomically: a
    ``.gpkg`` gets the layer ``changes`` and its QGIS style; other formats hold only it."""
    path = Path(path)
    driver = vector_driver(path)
    tmp = temp_path(path, create=False)  # GDAL drivers create the file themselves
    try:
        if driver == "Parquet":
            changes.to_parquet(tmp)
        else:
            options: dict[str, Any] = {"layer": path.stem}  # not the temporary name
            if driver == "GPKG":
                options = {"dataset_options": {"VERSION": "1.2"}, "layer": "changes"}
            changes.to_file(tmp, driver=driver, engine="pyogrio", geometry_type="Polygon", **options)
        if driver == "GPKG":
            write_layer_styles(tmp, {"changes": changes_qml(table)})
        publish(tmp, path)
    finally:
        discard(tmp)
        for extra in tmp.parent.glob(tmp.name + "-*"):  # SQLite journal of an interrupted write
            extra.unlink(missing_ok=True)
    return path


__all__ = [
    "ChangeCollector",
    "CHANGE_ALIASES",
    "CHANGE_COLUMNS",
    "SCENE_ALIASES",
    "scenes_aliases",
    "changes_qml",
    "scenes_qml",
    "write_vectors",
    "VectorOutput",
    "Rows",
    "changes_schema",
    "gdal_crs",
    "write_changes",
    "write_layer_styles",
    "vector_driver",
    "scenes_path",
]
