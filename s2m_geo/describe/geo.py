"""The S2M quadruple in real compass terms: a true-north frame, true bearings, ground areas.

docs/design.md §3.3: in geo outputs the 3×3 *where* rule runs in a north-up,
**true-north** local frame centred on the scene, ``bearing_deg`` is the true geodesic
azimuth from the scene centre, and the pixel thresholds of *how many* become ground areas
(threshold × ``reference_gsd_m``²). A raster with no CRS falls back to image terms and
says so. Pure functions over pyproj / shapely / numpy; no raster I/O.

The frame (:class:`GeoFrame`):

* **centre** – the centre of the pixel grid, i.e. grid coordinate (col W/2, row H/2) taken
  through the affine (rotated, south-up and geographic grids alike), as WGS84 lon/lat.
* **local frame** – an azimuthal-equidistant projection (``+proj=aeqd``, WGS84) centred
  there. Its y axis points to true north at the centre, so rotation, south-up rasters,
  meridian convergence and the unequal metres of a degree of lon/lat are all handled by
  mapping CRS → lon/lat → local (E, N) metres; nothing depends on the grid's axes.
* **extent** – the footprint of the pixel grid (its four edges, densified) mapped to the
  local frame, and its bounding box ``(e_min, e_max, n_min, n_max)``. For a north-up grid
  on its central meridian this is the grid itself; a grid that is rotated relative to true
  north (rotation terms, or convergence) gets the smallest true-north box holding it.
* **where** – ``fy = (n_max - n) / (n_max - n_min)``, ``fx = (e - e_min) / (e_max - e_min)``
  (clipped to [0, 1]) → :func:`~s2m_geo.describe.rules.direction_from_fractions`: the
  paper's thirds with half-open bands, ``center`` being the middle cell of that box.

Ground areas are geodesic areas on the WGS84 ellipsoid (:func:`ground_area_m2`), and pixel
areas come from an equal-area (Lambert azimuthal, ellipsoidal) frame at the scene centre
(:func:`pixel_ground_area_m2`, :class:`PixelAreas`): they vary with latitude for
geographic grids and with the scale factor for projected ones.

Image terms (``crs=None``): fractions are ``row / H`` and ``col / W`` (image up = north),
bearings come from the image geometry (up = 0°, right = 90°) and distances are in pixels;
``GeoFrame.image_terms`` is True so callers can say so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer

from ..classes import ClassTable
from ..errors import InputError
from .rules import (
    Quadruple,
    check_mask,
    class_row_col_counts,
    direction_from_fractions,
    direction_from_sums,
    directions_from_fractions,
    quantity_from_area,
    quantity_from_pixels,
)
from .templates import Rng, sentence

#: The ellipsoid of every geodesic computation here (bearings, distances, areas).
GEOD = Geod(ellps="WGS84")

#: Points per grid edge when mapping the footprint into the local frame.
FOOTPRINT_POINTS_PER_EDGE = 64
#: At most this many sampled rows (and columns) when modelling pixel areas of a grid.
AREA_SAMPLES = 257
#: Distances below this (metres; pixels in image terms) are the centre itself: bearing 0.
CENTRE_TOLERANCE_M = 1e-6
# Pixels of a mask processed at once when counting class pixels (bounds temporary memory).

_WGS84 = CRS.from_epsg(4326)


class GeoError(InputError, ValueError):
    """A CRS or transform that cannot place the scene on the Earth (an InputError and a ValueError)."""


def _as_crs(crs: Any) -> CRS | None:
    if crs is None:
        return None
    if isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_user_input(crs)
    except Exception as exc:  # pyproj.exceptions.CRSError and friends
        raise GeoError(f"not a coordinate reference system pyproj understands: {crs!r} ({exc})") from exc


def _as_affine(transform: Any) -> Affine:
    if transform is None:
        return Affine.identity()
    if isinstance(transform, Affine):
        t = transform
    else:
        vals = tuple(float(v) for v in transform)[:6]
        if len(vals) != 6:
            raise GeoError(f"a transform needs 6 coefficients (a, b, c, d, e, f), got {transform!r}")
        t = Affine(*vals)
    if not all(math.isfinite(v) for v in t[:6]):
        raise GeoError(f"transform has non-finite coefficients: {tuple(t[:6])}")
    if t.determinant == 0:
        raise GeoError(f"transform is degenerate (determinant 0): {tuple(t[:6])}")
    return t


def _wrap_lon(lon: float) -> float:
    """Longitude in [-180, 180] (unchanged, bit for bit, when it already is)."""
    return lon if -180.0 <= lon <= 180.0 else (lon + 180.0) % 360.0 - 180.0


@functools.lru_cache(maxsize=64)
def _lonlat_transformer(crs: CRS) -> Transformer:
    # cached: making a transformer costs milliseconds, and the ground areas of many small
    # polygons (changes cut by zones or sectors) would pay that once per polygon
    return Transformer.from_crs(crs, _WGS84, always_xy=True)


def _check_finite(*arrays: np.ndarray, what: str) -> None:
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise GeoError(
                f"{what}: coordinates could not be transformed (outside the area of "
                f"use of the CRS, or no transformation to WGS84)"
            )


def _check_lonlat(lon: Any, lat: Any, what: str) -> None:
    _check_finite(np.asarray(lon), np.asarray(lat), what=what)
    if np.any(np.abs(np.asarray(lat)) > 90.0):
        raise GeoError(f"{what}: latitude beyond ±90° (is the CRS or the transform wrong?)")


def _apply(t: Affine, cols: Any, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """Grid coordinates (col, row; corner-based, continuous) → CRS x, y."""
    c = np.asarray(cols, dtype=np.float64)
    r = np.asarray(rows, dtype=np.float64)
    return t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f


def _scalar_or_array(a: np.ndarray, scalar: bool) -> Any:
    return float(a) if scalar else a


def _footprint_grid_coords(width: int, height: int, per_edge: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid (col, row) points along the four edges of a width × height grid, corners included."""
    s = np.linspace(0.0, 1.0, per_edge + 1)
    cols = np.concatenate([s * width, np.full_like(s, width), (1 - s) * width, np.zeros_like(s)])
    rows = np.concatenate([np.zeros_like(s), s * height, np.full_like(s, height), (1 - s) * height])
    return cols, rows


@dataclass(frozen=True)
class GeoFrame:
    """A north-up, true-north local frame centred on a scene (see the module docstring).

    Build it with :meth:`from_grid`. Coordinates passed to the methods are CRS coordinates
    (``x``, ``y``; for a geographic CRS, lon/lat in the CRS's own units); arrays are fine.
    With ``crs=None`` (:attr:`image_terms` True) they are the coordinates the transform
    gives (with the default identity transform: ``x = col``, ``y = row``).
    """

    crs: CRS | None
    transform: Affine
    width: int
    height: int
    #: True when there is no CRS and everything is in image terms (pixels, up = north).
    image_terms: bool
    #: Scene centre in CRS coordinates (grid coordinate col W/2, row H/2).
    center_xy: tuple[float, float]
    #: Scene centre as WGS84 lon/lat (None in image terms).
    center_lonlat: tuple[float, float] | None
    #: Bounding box of the footprint in the local frame: (e_min, e_max, n_min, n_max),
    #: metres (pixels in image terms, with e = col - W/2, n = H/2 - row).
    extent: tuple[float, float, float, float]
    #: PROJ string of the local frame (None in image terms).
    local_proj: str | None
    _to_wgs84: Transformer | None = field(default=None, repr=False, compare=False)
    _wgs84_to_local: Transformer | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_grid(cls, crs: Any, transform: Any, width: int, height: int) -> GeoFrame:
        """The frame of a ``width`` × ``height`` pixel grid placed by ``transform`` in ``crs``.

        ``crs``: anything :meth:`pyproj.CRS.from_user_input` takes (EPSG code, WKT,
        ``pyproj.CRS``, ``rasterio.crs.CRS``), or None for image terms. ``transform``: an
        :class:`affine.Affine` (rasterio convention: x = a·col + b·row + c,
        y = d·col + e·row + f), or None for the identity.
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"grid size must be positive, got {width}x{height}")
        t = _as_affine(transform)
        c = _as_crs(crs)
        cx, cy = _apply(t, width / 2.0, height / 2.0)
        center_xy = (float(cx), float(cy))
        if c is None:
            return cls(
                crs=None,
                transform=t,
                width=width,
                height=height,
                image_terms=True,
                center_xy=center_xy,
                center_lonlat=None,
                extent=(-width / 2.0, width / 2.0, -height / 2.0, height / 2.0),
                local_proj=None,
            )
        to_wgs84 = _lonlat_transformer(c)
        lon0, lat0 = to_wgs84.transform(center_xy[0], center_xy[1])
        _check_lonlat(lon0, lat0, what=f"scene centre {center_xy} in {c.name}")
        lon0 = _wrap_lon(float(lon0))
        local_proj = f"+proj=aeqd +lat_0={float(lat0)!r} +lon_0={lon0!r} +datum=WGS84 +units=m +no_defs"
        wgs84_to_local = Transformer.from_crs(_WGS84, CRS.from_proj4(local_proj), always_xy=True)
        fc, fr = _footprint_grid_coords(width, height, FOOTPRINT_POINTS_PER_EDGE)
        fx, fy = _apply(t, fc, fr)
        lon, lat = to_wgs84.transform(fx, fy)
        _check_lonlat(lon, lat, what=f"scene footprint in {c.name}")
        e, n = wgs84_to_local.transform(lon, lat)
        _check_finite(e, n, what=f"scene footprint in {c.name}")
        extent = (float(np.min(e)), float(np.max(e)), float(np.min(n)), float(np.max(n)))
        return cls(
            crs=c,
            transform=t,
            width=width,
            height=height,
            image_terms=False,
            center_xy=center_xy,
            center_lonlat=(lon0, float(lat0)),
            extent=extent,
            local_proj=local_proj,
            _to_wgs84=to_wgs84,
            _wgs84_to_local=wgs84_to_local,
        )

    def __repr__(self) -> str:
        crs = "None (image terms)" if self.crs is None else repr(self.crs.to_string())
        return (
            f"GeoFrame(crs={crs}, grid={self.width}x{self.height}, "
            f"transform={tuple(self.transform[:6])}, center_lonlat={self.center_lonlat}, "
            f"extent={self.extent})"
        )

    # ------------------------------------------------------------------ coordinates
    def pixel_centers_to_crs(self, rows: Any, cols: Any) -> tuple[Any, Any]:
        """CRS (x, y) of pixel centres: row/col *indices* (fractional ok, e.g. a mean index);
        the centre of pixel (i, j) is grid coordinate (i + 0.5, j + 0.5)."""
        scalar = np.ndim(rows) == 0 and np.ndim(cols) == 0
        x, y = _apply(
            self.transform, np.asarray(cols, dtype=np.float64) + 0.5, np.asarray(rows, dtype=np.float64) + 0.5
        )
        return _scalar_or_array(x, scalar), _scalar_or_array(y, scalar)

    def crs_to_grid(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Continuous grid coordinates (row, col) of CRS points (corner-based: pixel (i, j)
        spans [i, i+1] × [j, j+1])."""
        scalar = np.ndim(x) == 0 and np.ndim(y) == 0
        inv = ~self.transform
        col, row = _apply(inv, x, y)
        return _scalar_or_array(row, scalar), _scalar_or_array(col, scalar)

    @property
    def _crs_name(self) -> str:
        return "image terms" if self.crs is None else str(self.crs.name)

    def to_lonlat(self, x: Any, y: Any) -> tuple[Any, Any]:
        """WGS84 (lon, lat) of CRS points. Raises ValueError in image terms (no CRS)."""
        if self.image_terms:
            raise ValueError("the raster has no CRS: there is no lon/lat (image terms only)")
        scalar = np.ndim(x) == 0 and np.ndim(y) == 0
        assert self._to_wgs84 is not None  # set whenever there is a CRS
        lon, lat = self._to_wgs84.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        _check_lonlat(lon, lat, what=f"points in {self._crs_name}")
        return _scalar_or_array(lon, scalar), _scalar_or_array(lat, scalar)

    def to_local(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Local true-north (E, N) metres of CRS points, origin at the scene centre.

        In image terms: (col - W/2, H/2 - row) in pixels.
        """
        scalar = np.ndim(x) == 0 and np.ndim(y) == 0
        if self.image_terms:
            row, col = self.crs_to_grid(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            e, n = col - self.width / 2.0, self.height / 2.0 - row
        else:
            lon, lat = self.to_lonlat(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            e, n = self._lonlat_to_local(lon, lat)
        return _scalar_or_array(np.asarray(e, dtype=np.float64), scalar), _scalar_or_array(
            np.asarray(n, dtype=np.float64), scalar
        )

    def from_local(self, e: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
        """CRS (x, y) of local (E, N) points: the inverse of :meth:`to_local` (arrays)."""
        e, n = np.asarray(e, dtype=np.float64), np.asarray(n, dtype=np.float64)
        if self.image_terms:
            x, y = _apply(self.transform, e + self.width / 2.0, self.height / 2.0 - n)
        else:
            assert self._wgs84_to_local is not None and self._to_wgs84 is not None
            lon, lat = self._wgs84_to_local.transform(e, n, direction="INVERSE")
            x, y = self._to_wgs84.transform(lon, lat, direction="INVERSE")
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            _check_finite(x, y, what=f"local points mapped to {self._crs_name}")
        return x, y

    def _lonlat_to_local(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        assert self._wgs84_to_local is not None
        e, n = self._wgs84_to_local.transform(lon, lat)
        e, n = np.asarray(e, dtype=np.float64), np.asarray(n, dtype=np.float64)
        _check_finite(e, n, what=f"points in {self._crs_name}")
        return e, n

    # ------------------------------------------------------------------ the S2M rule
    def _local_fractions(self, e: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
        e_min, e_max, n_min, n_max = self.extent
        fy = np.clip((n_max - np.asarray(n)) / (n_max - n_min), 0.0, 1.0)
        fx = np.clip((np.asarray(e) - e_min) / (e_max - e_min), 0.0, 1.0)
        return fy, fx

    def fractions(self, x: Any, y: Any) -> tuple[Any, Any]:
        """(fy, fx) of CRS points in the frame's extent: 0 = north / west, 1 = south / east,
        clipped to [0, 1]. In image terms (row / H, col / W)."""
        scalar = np.ndim(x) == 0 and np.ndim(y) == 0
        fy, fx = self._local_fractions(*self.to_local(x, y))
        return _scalar_or_array(fy, scalar), _scalar_or_array(fx, scalar)

    def direction(self, x: Any, y: Any) -> Any:
        """The S2M 3×3 direction word of a CRS point (a list of words for arrays)."""
        fy, fx = self.fractions(x, y)
        if np.ndim(fy) == 0:
            return direction_from_fractions(float(fy), float(fx))
        return directions_from_fractions(fy, fx)

    def bearing_distance(self, x: Any, y: Any) -> tuple[Any, Any]:
        """(bearing_deg, distance) of CRS points from the scene centre.

        Geo: true geodesic azimuth on WGS84 (``Geod.inv``) in [0, 360), clockwise from true
        north, and the geodesic distance in metres. A point at the centre (closer than
        :data:`CENTRE_TOLERANCE_M`) has bearing 0 and distance 0. Image terms: the bearing
        in the image (up = 0°, right = 90°) and the distance in pixels.
        """
        scalar = np.ndim(x) == 0 and np.ndim(y) == 0
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if self.image_terms:
            az, dist = self._bearing_distance(*self.to_local(x, y))
        else:
            az, dist = self._bearing_distance(*self.to_lonlat(x, y))
        return _scalar_or_array(az, scalar), _scalar_or_array(dist, scalar)

    def _bearing_distance(self, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`bearing_distance` from local (E, N) in image terms, else from lon/lat."""
        if self.image_terms:
            az = np.degrees(np.arctan2(a, b))
            dist = np.hypot(a, b)
        else:
            lon, lat = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
            assert self.center_lonlat is not None
            lon0, lat0 = self.center_lonlat
            az, _, dist = GEOD.inv(np.full(lon.shape, lon0), np.full(lat.shape, lat0), lon, lat)
            az, dist = np.asarray(az, dtype=np.float64), np.asarray(dist, dtype=np.float64)
        centre = dist < CENTRE_TOLERANCE_M  # numerical noise of the CRS round trip
        dist = np.where(centre, 0.0, dist)
        az = np.where(centre, 0.0, az % 360.0)
        az = np.where(az >= 360.0, 0.0, az)  # (-tiny) % 360 rounds to 360.0
        return az, dist

    def locate(self, cy: float, cx: float) -> dict[str, Any]:
        """Where a point given in continuous grid coordinates (row ``cy``, col ``cx``) lies.

        A region centroid in these coordinates is ``mean row index + 0.5``,
        ``mean col index + 0.5``. Returns ``direction``, ``bearing_deg``, ``distance_m``,
        ``lon``, ``lat``; in image terms ``distance_m``, ``lon`` and ``lat`` are None and
        ``distance_px`` holds the distance in pixels.
        """
        many = self.locations([float(cy)], [float(cx)])
        return {k: v[0] if isinstance(v, list) else (None if v is None else float(v[0])) for k, v in many.items()}

    def locations(self, cy: Any, cx: Any) -> dict[str, Any]:
        """:meth:`locate` of many points at once (one pyproj call per step for all of them):
        ``direction`` a list of words, the others float64 arrays (None where :meth:`locate`
        gives None)."""
        gx, gy = _apply(self.transform, np.ravel(cx), np.ravel(cy))
        if self.image_terms:
            e, n = self.to_local(gx, gy)
            bearing, dist = self._bearing_distance(e, n)
        else:
            lon, lat = self.to_lonlat(gx, gy)
            e, n = self._lonlat_to_local(lon, lat)
            bearing, dist = self._bearing_distance(lon, lat)
        out: dict[str, Any] = {
            "direction": directions_from_fractions(*self._local_fractions(e, n)),
            "bearing_deg": bearing,
        }
        if self.image_terms:
            out.update(distance_m=None, lon=None, lat=None, distance_px=dist)
        else:
            out.update(distance_m=dist, lon=lon, lat=lat)
        return out

    # ------------------------------------------------------------------ areas
    def north_in_grid(self) -> tuple[float, float] | None:
        """Unit vector (d col, d row) in grid pixels pointing to true north from the grid
        centre (a map's north arrow); None in image terms or where the CRS cannot say."""
        if self._to_wgs84 is None or self.crs is None:
            return None
        try:
            lon, lat = self._to_wgs84.transform(*self.center_xy)
            step = 1e-4 if lat < 89.0 else -1e-4
            x2, y2 = Transformer.from_crs(_WGS84, self.crs, always_xy=True).transform(lon, lat + step)
            c2, r2 = _apply(~self.transform, x2, y2)
            dx, dy = float(c2) - self.width / 2.0, float(r2) - self.height / 2.0
        except Exception:
            return None
        if step < 0:
            dx, dy = -dx, -dy
        n = math.hypot(dx, dy)
        if not math.isfinite(n) or n == 0:
            return None
        return dx / n, dy / n

    def metres_per_pixel(self) -> float | None:
        """Ground metres per grid pixel along the centre row (geodesic, between the quarter
        points); None in image terms or where the CRS cannot say."""
        if self._to_wgs84 is None:
            return None
        c0, c1, r = self.width * 0.25, self.width * 0.75, self.height / 2.0
        try:
            x, y = _apply(self.transform, np.array([c0, c1]), np.array([r, r]))
            lon, lat = self._to_wgs84.transform(x, y)
            _, _, dist = GEOD.inv(lon[0], lat[0], lon[1], lat[1])
        except Exception:
            return None
        mpp = float(dist) / (c1 - c0)
        return mpp if math.isfinite(mpp) and mpp > 0 else None

    def pixel_areas(self) -> PixelAreas:
        """Ground areas of this grid's pixels (:func:`pixel_areas`). Needs a CRS."""
        if self.image_terms:
            raise ValueError("the raster has no CRS: pixels have no ground area (image terms only)")
        return pixel_areas(self.transform, self.crs, self.height, self.width, center_lonlat=self.center_lonlat)


# ---------------------------------------------------------------------- ground areas


def _max_segment(geom: shapely.Geometry) -> float:
    x0, y0, x1, y1 = geom.bounds
    span = max(x1 - x0, y1 - y0)
    return span / 128.0 if span > 0 else 0.0


def ground_area_m2(geom: Any, crs: Any, max_segment: float | None = None) -> float:
    """True ground area (m², geodesic on the WGS84 ellipsoid) of a polygon in ``crs``.

    ``geom``: a shapely Polygon or MultiPolygon (other geometries have area 0) in the
    coordinates of ``crs`` (projected or geographic). Edges are straight lines in the CRS;
    they are densified (``shapely.segmentize``, by default to 1/128 of the geometry's larger
    bounding-box side, in CRS units) before being mapped to lon/lat, so long edges follow
    their true course. Each ring's area is taken unsigned, holes subtracted, parts summed,
    so ring orientation does not matter.
    """
    c = _as_crs(crs)
    if c is None:
        raise ValueError("ground_area_m2 needs a CRS")
    if geom is None or geom.is_empty:
        return 0.0
    seg = _max_segment(geom) if max_segment is None else float(max_segment)
    if seg > 0:
        geom = shapely.segmentize(geom, seg)
    tr = _lonlat_transformer(c)

    def ring_area(ring: Any) -> float:
        xy = np.asarray(ring.coords, dtype=np.float64)
        if len(xy) < 4:
            return 0.0
        lon, lat = tr.transform(xy[:, 0], xy[:, 1])
        _check_lonlat(lon, lat, what=f"polygon in {c.name}")
        area, _ = GEOD.polygon_area_perimeter(lon, lat)
        return abs(float(area))

    total = 0.0
    parts = getattr(geom, "geoms", [geom])
    for part in parts:
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        total += ring_area(part.exterior) - sum(ring_area(h) for h in part.interiors)
    return max(total, 0.0)


#: Polygons at most this wide on the ground (m) get their area in bulk from the area element at
#: their centroid (:func:`ground_areas_m2`); wider ones are measured exactly (:func:`ground_area_m2`).
BULK_AREA_MAX_SPAN_M = 2000.0
#: The bulk areas agree with :func:`ground_area_m2` within this relative difference plus
#: :data:`BULK_AREA_ATOL_M2` (tested on UTM, geographic, polar stereographic and Web Mercator
#: CRSs, polygons from 0.5 m to :data:`BULK_AREA_MAX_SPAN_M` across).
BULK_AREA_RTOL = 1e-7
#: The absolute part (m²): the exact path's own noise. Its geodesic sum on lon/lat adds up
#: ring terms of the size of the Earth's surface, which leaves ~1e-4 m² whatever the polygon's
#: size; the bulk path is closer than that to an equal-area projection of the polygon itself.
BULK_AREA_ATOL_M2 = 1e-3


def ground_areas_m2(geoms: Any, crs: Any) -> np.ndarray:
    """:func:`ground_area_m2` of many polygons at once (float64 array, shape of ``geoms``).

    A polygon's ground area is the integral of the projection's areal scale over it. For a
    polygon up to :data:`BULK_AREA_MAX_SPAN_M` wide that scale is smooth enough to be taken
    at its area centroid: ground area = planar area (CRS units²) × the Jacobian determinant
    at the centroid of the map from ``crs`` to a Lambert azimuthal equal-area frame (WGS84,
    centred on the whole degree of lon/lat nearest the polygon), found by central differences
    over a quarter of the polygon's size. The first-order variation of the
    scale cancels at the centroid; what is left is of order (span / Earth radius)², so the
    result agrees with :func:`ground_area_m2` within :data:`BULK_AREA_RTOL`. One pyproj call
    per degree cell of the batch (four points per polygon) instead of one densified ring each.
    Wider polygons, and geometries that are not (Multi)Polygons, take the exact path.
    """
    c = _as_crs(crs)
    if c is None:
        raise ValueError("ground_areas_m2 needs a CRS")
    g = np.asarray(geoms, dtype=object)
    out = np.zeros(g.shape, np.float64)
    flat_g, flat_out = g.reshape(-1), out.reshape(-1)
    planar = np.nan_to_num(np.asarray(shapely.area(flat_g), np.float64))
    kind = shapely.get_type_id(flat_g)
    bulk = (planar > 0) & ((kind == 3) | (kind == 6))  # Polygon, MultiPolygon
    other = (planar > 0) & ~bulk
    idx = np.flatnonzero(bulk)
    if idx.size:
        exact = _bulk_areas(flat_g[idx], planar[idx], c, flat_out, idx)
        other[idx[exact]] = True
    for i in np.flatnonzero(other):
        flat_out[i] = ground_area_m2(flat_g[i], c)
    return out


def _bulk_areas(geoms: np.ndarray, planar: np.ndarray, crs: CRS, out: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Fill ``out[idx]`` with the centroid-scale areas of ``geoms``; return the mask of those
    that must be measured exactly instead (too wide)."""
    x0, y0, x1, y1 = np.asarray(shapely.bounds(geoms), np.float64).T
    cx, cy = shapely.get_coordinates(shapely.centroid(geoms)).T
    lon, lat = _lonlat_transformer(crs).transform(cx, cy)
    _check_lonlat(lon, lat, what=f"polygons in {crs.name}")
    # each polygon in the equal-area frame centred on the whole degree nearest to it (one
    # cached frame per degree cell): its area depends on nothing else in the batch
    cells, cell = np.unique(
        np.column_stack([np.round((np.asarray(lon) + 180.0) % 360.0 - 180.0), np.round(lat)]),
        axis=0,
        return_inverse=True,
    )
    h = 0.25 * np.maximum(x1 - x0, y1 - y0)
    det = np.empty_like(h)
    span = np.empty_like(h)
    for k, (lon0, lat0) in enumerate(cells.tolist()):
        sel = np.flatnonzero(cell.ravel() == k)
        det[sel], span[sel] = _centroid_scale(
            _equal_area_transformer(crs, lon0, lat0), cx[sel], cy[sel], h[sel], x1[sel] - x0[sel], y1[sel] - y0[sel]
        )
    _check_finite(det, span, what=f"polygons in {crs.name}")
    exact = (span > BULK_AREA_MAX_SPAN_M) | ~(det > 0)
    if crs.is_projected and crs.axis_info:
        # the scale's curvature acts over the span in map units, which a conformal map at high
        # latitude stretches far beyond the ground span (Mercator at 85°: 11x): bound it too
        unit = crs.axis_info[0].unit_conversion_factor or 1.0
        exact |= np.maximum(x1 - x0, y1 - y0) * unit > BULK_AREA_MAX_SPAN_M
    out[idx] = np.where(exact, 0.0, planar * det)
    return exact


def _centroid_scale(
    tr: Transformer, cx: np.ndarray, cy: np.ndarray, h: np.ndarray, width: np.ndarray, height: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(|Jacobian determinant| of ``tr`` at (cx, cy) by central differences of step h, the
    bounding box's larger side on the ground) per point, in one pyproj call."""
    zero = np.zeros_like(h)
    u, v = tr.transform(
        np.tile(cx, 4) + np.concatenate([h, -h, zero, zero]), np.tile(cy, 4) + np.concatenate([zero, zero, h, -h])
    )
    u, v = np.asarray(u, np.float64).reshape(4, -1), np.asarray(v, np.float64).reshape(4, -1)
    two_h = 2.0 * h
    dudx, dvdx = (u[0] - u[1]) / two_h, (v[0] - v[1]) / two_h
    dudy, dvdy = (u[2] - u[3]) / two_h, (v[2] - v[3]) / two_h
    det = np.abs(dudx * dvdy - dudy * dvdx)
    return det, np.maximum(np.hypot(dudx, dvdx) * width, np.hypot(dudy, dvdy) * height)


@functools.lru_cache(maxsize=64)
def _equal_area_transformer(crs: CRS, lon0: float, lat0: float) -> Transformer:
    laea = CRS.from_proj4(f"+proj=laea +lat_0={float(lat0)!r} +lon_0={float(lon0)!r} +datum=WGS84 +units=m +no_defs")
    return Transformer.from_crs(crs, laea, always_xy=True)


def _grid_center_lonlat(transform: Affine, crs: CRS, height: int, width: int) -> tuple[float, float]:
    cx, cy = _apply(transform, width / 2.0, height / 2.0)
    lon, lat = _lonlat_transformer(crs).transform(float(cx), float(cy))
    _check_lonlat(lon, lat, what=f"grid centre in {crs.name}")
    return _wrap_lon(float(lon)), float(lat)


def _pixel_areas_at(t: Affine, tr: Transformer, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Areas (m²) of pixels (row, col indices) as quadrilaterals in an equal-area frame."""
    r = np.asarray(rows, dtype=np.float64)
    c = np.asarray(cols, dtype=np.float64)
    corners = [(c, r), (c + 1.0, r), (c + 1.0, r + 1.0), (c, r + 1.0)]
    pts = []
    for cc, rr in corners:
        x, y = _apply(t, cc, rr)
        u, v = tr.transform(x, y)
        u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
        _check_finite(u, v, what="pixel corners")
        pts.append((u, v))
    # shoelace on differences from the first corner (keeps precision for tiny pixels)
    (u0, v0), (u1, v1), (u2, v2), (u3, v3) = pts
    du1, dv1, du2, dv2, du3, dv3 = u1 - u0, v1 - v0, u2 - u0, v2 - v0, u3 - u0, v3 - v0
    return 0.5 * np.abs((du1 * dv2 - du2 * dv1) + (du2 * dv3 - du3 * dv2))


def pixel_ground_area_m2(
    transform: Any, crs: Any, rows: Any, cols: Any, center_lonlat: tuple[float, float] | None = None
) -> Any:
    """Ground area (m², WGS84 ellipsoid) of the pixels at row/col indices (arrays ok).

    Each pixel is mapped corner by corner into a Lambert azimuthal equal-area frame
    (ellipsoidal, so equal-area on WGS84) centred at ``center_lonlat`` (default: the first
    pixel given), where its quadrilateral area is the ground area. Geographic pixels shrink
    with cos(latitude); projected ones by the areal scale factor of the projection.
    """
    c = _as_crs(crs)
    if c is None:
        raise ValueError("pixel_ground_area_m2 needs a CRS")
    t = _as_affine(transform)
    scalar = np.ndim(rows) == 0 and np.ndim(cols) == 0
    r, cl = np.broadcast_arrays(np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64))
    if r.size == 0:
        return np.zeros(r.shape, dtype=np.float64)
    if center_lonlat is None:
        x, y = _apply(t, cl.flat[0] + 0.5, r.flat[0] + 0.5)
        lon, lat = _lonlat_transformer(c).transform(float(x), float(y))
        _check_lonlat(lon, lat, what=f"pixel in {c.name}")
        center_lonlat = (_wrap_lon(float(lon)), float(lat))
    tr = _equal_area_transformer(c, *center_lonlat)
    a = _pixel_areas_at(t, tr, r, cl)
    return float(a) if scalar else a


@dataclass(frozen=True)
class PixelAreas:
    """Pixel ground areas of an H × W grid as an additive row + column model.

    ``area(r, c) ≈ row_m2[r] + col_m2[c] - mean_m2``, where ``row_m2`` is the mean pixel
    area of each row, ``col_m2`` of each column and ``mean_m2`` of the grid (each from a
    sample of at most :data:`AREA_SAMPLES` rows × columns, interpolated). This is exact when
    the area depends on the row only (north-up geographic grids: latitude), on the column
    only (geographic grids rotated 90°), or is constant, and a close approximation
    otherwise (projected grids vary by parts per million over a scene). Region areas then
    need only per-row and per-column pixel counts (:meth:`total`).
    """

    row_m2: np.ndarray
    col_m2: np.ndarray
    mean_m2: float

    def total(self, row_counts: np.ndarray, col_counts: np.ndarray) -> float:
        """Ground area of a set of pixels given its pixel count per row and per column."""
        rc = np.asarray(row_counts, dtype=np.float64)
        cc = np.asarray(col_counts, dtype=np.float64)
        n = float(rc.sum())
        if n == 0:
            return 0.0
        return float(rc @ self.row_m2 + cc @ self.col_m2 - n * self.mean_m2)

    def at(self, rows: Any, cols: Any) -> Any:
        """Modelled area of the pixels at row/col indices."""
        return np.asarray(self.row_m2)[np.asarray(rows)] + np.asarray(self.col_m2)[np.asarray(cols)] - self.mean_m2


def pixel_areas(
    transform: Any, crs: Any, height: int, width: int, center_lonlat: tuple[float, float] | None = None
) -> PixelAreas:
    """The :class:`PixelAreas` of a ``height`` × ``width`` grid (per-row and per-column areas).

    For an EPSG:4326 grid ``pixel_areas(...).row_m2`` is the ground area of a pixel in each
    row (it varies with latitude).
    """
    c = _as_crs(crs)
    if c is None:
        raise ValueError("pixel_areas needs a CRS")
    t = _as_affine(transform)
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"grid size must be positive, got {width}x{height}")
    if center_lonlat is None:
        center_lonlat = _grid_center_lonlat(t, c, height, width)
    tr = _equal_area_transformer(c, *center_lonlat)
    rs = np.unique(np.round(np.linspace(0, height - 1, min(height, AREA_SAMPLES))).astype(np.int64))
    cs = np.unique(np.round(np.linspace(0, width - 1, min(width, AREA_SAMPLES))).astype(np.int64))
    rr, cc = np.meshgrid(rs, cs, indexing="ij")
    a = _pixel_areas_at(t, tr, rr, cc)  # (len(rs), len(cs))
    all_rows = np.arange(height, dtype=np.float64)
    all_cols = np.arange(width, dtype=np.float64)
    row_m2 = np.interp(all_rows, rs.astype(np.float64), a.mean(axis=1))
    col_m2 = np.interp(all_cols, cs.astype(np.float64), a.mean(axis=0))
    return PixelAreas(row_m2=row_m2, col_m2=col_m2, mean_m2=float(a.mean()))


# ---------------------------------------------------------------------- describe a mask


def describe_mask_geo(
    mask: np.ndarray, transform: Any, crs: Any, table: ClassTable, rng: Rng | None = None
) -> tuple[list[tuple[Quadruple, str, dict[str, Any]]], bool]:
    """The ``s2m-geo describe`` of a georeferenced class raster, in real compass terms.

    For each change class present (ids 1..K, ascending): its pixel centroid (mean row and
    column of its pixel centres) → CRS via ``transform`` → :meth:`GeoFrame.direction` in
    the scene's true-north frame; its quantity from its ground area (sum of per-pixel
    ground areas, :class:`PixelAreas`) against ``threshold × table.reference_gsd_m``²; its
    sentence (:func:`~s2m_geo.describe.templates.sentence`, one template draw per class
    from ``rng``); and extras ``bearing_deg``, ``distance_m``, ``area_m2``, ``lon``, ``lat``.

    Returns ``(items, image_terms)``. With ``crs=None`` (image terms, flag True) directions
    follow rows/columns, the quantity comes from pixel counts, ``bearing_deg`` is the image
    bearing (up = 0°), ``distance_m``/``area_m2``/``lon``/``lat`` are None and the extras add
    ``distance_px``. Raises :class:`~s2m_geo.describe.rules.MaskError` for unknown ids.
    """
    m = check_mask(mask, table)
    if m.size == 0:
        return [], crs is None
    per_row, per_col = class_row_col_counts(m, table.num_classes)
    return describe_counts_geo(per_row, per_col, transform, crs, table, rng)


def describe_counts_geo(
    per_row: np.ndarray, per_col: np.ndarray, transform: Any, crs: Any, table: ClassTable, rng: Rng | None = None
) -> tuple[list[tuple[Quadruple, str, dict[str, Any]]], bool]:
    """:func:`describe_mask_geo` from a mask's per-class pixel counts per row (K+1, H) and
    per column (K+1, W) alone: what a raster too large to hold in memory is read into
    (:func:`s2m_geo.evaluate.class_counts`)."""
    image_terms = crs is None
    h, w = per_row.shape[1], per_col.shape[1]
    counts = per_row.sum(axis=1)
    if not counts[1:].any():
        return [], image_terms
    frame = GeoFrame.from_grid(crs, transform, w, h)
    areas = None if frame.image_terms else frame.pixel_areas()
    rows_idx = np.arange(h, dtype=np.int64)
    cols_idx = np.arange(w, dtype=np.int64)
    out: list[tuple[Quadruple, str, dict[str, Any]]] = []
    for cid in range(1, table.num_classes):
        n = int(counts[cid])
        if n == 0:
            continue
        row_sum = int(per_row[cid] @ rows_idx)
        col_sum = int(per_col[cid] @ cols_idx)
        cy, cx = row_sum / n + 0.5, col_sum / n + 0.5
        loc = frame.locate(cy, cx)
        if frame.image_terms:  # exactly the image rule (integer arithmetic, as quadruples_from_mask)
            loc["direction"] = direction_from_sums(row_sum, col_sum, n, h, w)
        if areas is None:
            area = None
            quantity = quantity_from_pixels(n)
        else:
            area = areas.total(per_row[cid], per_col[cid])
            quantity = quantity_from_area(area, table.reference_gsd_m)
        cls = table[cid]
        q = Quadruple(
            class_id=cid,
            category=cls.category,
            change_type=cls.change_type,
            quantity=quantity,
            direction=loc["direction"],
            pixels=n,
        )
        extras: dict[str, Any] = {
            "bearing_deg": loc["bearing_deg"],
            "distance_m": loc["distance_m"],
            "area_m2": area,
            "lon": loc["lon"],
            "lat": loc["lat"],
        }
        if frame.image_terms:
            extras["distance_px"] = loc["distance_px"]
        out.append((q, sentence(q, table, rng=rng), extras))
    return out, frame.image_terms
