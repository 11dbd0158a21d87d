"""The S2M quadruple in real compass terms (s2m_geo.describe.geo): true-north frame,
true bearings, ground areas, image-terms fallback. Hand-built affines, no files."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Geod, Proj, Transformer

from s2m_geo.classes import load_class_table
from s2m_geo.describe import MaskError, quadruples_from_mask
from s2m_geo.describe.geo import (
    BULK_AREA_ATOL_M2,
    BULK_AREA_MAX_SPAN_M,
    BULK_AREA_RTOL,
    GeoError,
    GeoFrame,
    describe_mask_geo,
    ground_area_m2,
    ground_areas_m2,
    pixel_areas,
    pixel_ground_area_m2,
)
from s2m_geo.errors import InputError

TABLE = load_class_table("gaza_change")  # reference_gsd_m 0.5
GEOD = Geod(ellps="WGS84")
GAZA = (34.45, 31.5)
UTM36 = "EPSG:32636"
N = 1000  # grid size (pixels)
PX = 0.5  # pixel size (metres)


def angdiff(a: float, b: float) -> float:
    """Smallest absolute difference between two angles in degrees."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def utm_xy(lon: float, lat: float, crs: str = UTM36) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)


def utm_north_up(lon=GAZA[0], lat=GAZA[1], crs=UTM36, n=N, px=PX) -> Affine:
    """North-up grid of n x n pixels of px metres centred on (lon, lat)."""
    x0, y0 = utm_xy(lon, lat, crs)
    half = n * px / 2
    return Affine(px, 0.0, x0 - half, 0.0, -px, y0 + half)


def metres_per_degree(lat: float) -> tuple[float, float]:
    """(metres per degree of longitude, of latitude) on WGS84 (closed-form)."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    phi = math.radians(lat)
    w = math.sqrt(1 - e2 * math.sin(phi) ** 2)
    m_lat = math.pi / 180 * a * (1 - e2) / w**3
    m_lon = math.pi / 180 * a * math.cos(phi) / w
    return m_lon, m_lat


def geographic_north_up(lon=GAZA[0], lat=GAZA[1], n=N, px=PX) -> Affine:
    """EPSG:4326 grid with ~px-metre square ground pixels (different degree sizes in x, y)."""
    m_lon, m_lat = metres_per_degree(lat)
    dlon, dlat = px / m_lon, px / m_lat
    return Affine(dlon, 0.0, lon - n / 2 * dlon, 0.0, -dlat, lat + n / 2 * dlat)


def to_ease(geom):
    """``geom`` (lon/lat) in EASE-Grid 2.0 global (EPSG:6933), an equal-area projection."""
    tr = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
    return shapely.transform(geom, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))


def block(rows: slice, cols: slice, cid: int = 1, shape=(N, N)) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[rows, cols] = cid
    return m


def independent_bearing(transform: Affine, crs, cy: float, cx: float, shape=(N, N)) -> float:
    """Geod.inv bearing from the grid centre to grid coordinate (cy, cx), computed here."""
    h, w = shape
    tr = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True)
    lon0, lat0 = tr.transform(*(transform * (w / 2, h / 2)))
    lon1, lat1 = tr.transform(*(transform * (cx, cy)))
    return GEOD.inv(lon0, lat0, lon1, lat1)[0] % 360.0


def check_northeast(transform: Affine, crs, mask: np.ndarray, distance_m: float = 166.67 * math.sqrt(2)) -> dict:
    """The change in ``mask`` reads northeast, bearing ~45 deg, equal to an independent Geod.inv."""
    items, image_terms = describe_mask_geo(mask, transform, crs, TABLE)
    assert image_terms is False
    ((q, text, extras),) = items
    assert q.direction == "northeast"
    assert "northeast" in text
    rows, cols = np.nonzero(mask)
    cy, cx = rows.mean() + 0.5, cols.mean() + 0.5
    ref = independent_bearing(transform, crs, cy, cx, mask.shape)
    assert angdiff(extras["bearing_deg"], ref) < 0.1
    assert angdiff(extras["bearing_deg"], 45.0) < 3.0
    assert 0.0 <= extras["bearing_deg"] < 360.0
    # default: the NE third centre of a 500 m square scene, ~ 166.7 * sqrt(2) m away
    assert extras["distance_m"] == pytest.approx(distance_m, rel=0.02)
    frame = GeoFrame.from_grid(crs, transform, mask.shape[1], mask.shape[0])
    assert frame.direction(*frame.pixel_centers_to_crs(rows.mean(), cols.mean())) == "northeast"
    return extras


# NE third centre of the grid: rows 0..333 -> centre ~166, cols 666..999 -> centre ~833
NE_ROWS, NE_COLS = slice(151, 182), slice(818, 849)  # 31x31 block, mean index 166 / 833


# ---------------------------------------------------------------- north-east, four georeferencings


def test_northeast_utm_north_up():
    t = utm_north_up()
    extras = check_northeast(t, UTM36, block(NE_ROWS, NE_COLS))
    # UTM 36N at 34.45E: grid north is 0.76 deg east of true north, so the grid diagonal
    # reads 45 + convergence
    conv = Proj(UTM36).get_factors(*GAZA).meridian_convergence
    assert extras["bearing_deg"] == pytest.approx(45.0 + conv, abs=0.05)
    assert extras["lon"] > GAZA[0] and extras["lat"] > GAZA[1]


def test_northeast_geographic_4326():
    t = geographic_north_up()
    assert t.a != -t.e  # degree sizes differ in x and y
    extras = check_northeast(t, "EPSG:4326", block(NE_ROWS, NE_COLS))
    assert extras["bearing_deg"] == pytest.approx(45.0, abs=0.2)  # square ground pixels


def test_northeast_south_up():
    # positive y pixel size: row 0 is the SOUTH edge, rows grow northwards
    x0, y0 = utm_xy(*GAZA)
    t = Affine(PX, 0.0, x0 - 250.0, 0.0, PX, y0 - 250.0)
    bottom_rows = slice(N - 182, N - 151)  # bottom of the raster = north on the ground
    mask = block(bottom_rows, NE_COLS)
    assert quadruples_from_mask(mask, TABLE)[0].direction == "southeast"  # image-relative
    check_northeast(t, UTM36, mask)


def test_northeast_rotated_90():
    # image up points east: x = c - 0.5 row (row 0 at the east edge), y = f - 0.5 col
    # (col 0 at the north edge): b, d != 0
    x0, y0 = utm_xy(*GAZA)
    t = Affine(0.0, -PX, x0 + 250.0, -PX, 0.0, y0 + 250.0)
    assert t.b != 0 and t.d != 0
    # north-east on the ground = small col (north), small row (east)
    mask = block(slice(151, 182), slice(151, 182))
    assert quadruples_from_mask(mask, TABLE)[0].direction == "northwest"  # image-relative
    check_northeast(t, UTM36, mask)


def test_northeast_rotated_30_degrees():
    x0, y0 = utm_xy(*GAZA)
    # rotate a north-up grid 30 deg about its centre
    t = Affine.translation(x0, y0) * Affine.rotation(30.0) * Affine.translation(-250.0, 250.0) * Affine.scale(PX, -PX)
    frame = GeoFrame.from_grid(UTM36, t, N, N)
    assert frame.center_xy == pytest.approx((x0, y0))
    # a point 180 m true-NE of the centre, as grid pixels
    lon, lat, _ = GEOD.fwd(*GAZA, 45.0, 180.0)
    cy, cx = frame.crs_to_grid(*utm_xy(lon, lat))
    r, c = int(cy), int(cx)
    mask = block(slice(r - 10, r + 11), slice(c - 10, c + 11))
    extras = check_northeast(t, UTM36, mask, distance_m=180.0)
    assert extras["bearing_deg"] == pytest.approx(45.0, abs=0.5)


# ---------------------------------------------------------------- meridian convergence


@pytest.mark.parametrize("lon", [36.0, 30.0])
def test_convergence_grid_north_vs_true_north(lon):
    lat = 31.5
    t = utm_north_up(lon=lon, lat=lat)
    frame = GeoFrame.from_grid(UTM36, t, N, N)
    assert frame.center_lonlat == pytest.approx((lon, lat), abs=1e-9)
    conv = Proj(UTM36).get_factors(lon, lat, radians=False, errcheck=False).meridian_convergence
    assert abs(conv) > 1.5 and math.copysign(1, conv) == math.copysign(1, lon - 33.0)
    # due grid-north of the centre: mean col index 499.5 -> grid x exactly at the centre
    mask = block(slice(40, 61), slice(490, 510))
    ((q, _, extras),), _ = describe_mask_geo(mask, t, UTM36, TABLE)
    assert q.direction == "north"
    assert angdiff(extras["bearing_deg"], conv) < 0.1  # true azimuth = grid azimuth + conv
    assert 0.0 <= extras["bearing_deg"] < 360.0  # west of the CM: 360 + conv, not negative
    # a change placed at TRUE north reads north with bearing ~0
    plon, plat, _ = GEOD.fwd(lon, lat, 0.0, 200.0)
    cy, cx = frame.crs_to_grid(*utm_xy(plon, plat))
    r, c = int(cy), int(cx)
    assert c != 499  # true north is off the grid column through the centre
    mask = block(slice(r - 10, r + 11), slice(c - 10, c + 11))
    ((q, _, extras),), _ = describe_mask_geo(mask, t, UTM36, TABLE)
    assert q.direction == "north"
    assert angdiff(extras["bearing_deg"], 0.0) < 0.2


def test_convergence_moves_a_band_boundary():
    # far from the CM at high latitude: convergence ~ 2.8 deg; a pixel just inside the
    # centre column on the grid lies east of the 2/3 line in the true-north frame
    lon, lat = 36.0, 70.0
    t = utm_north_up(lon=lon, lat=lat)
    conv = Proj(UTM36).get_factors(lon, lat).meridian_convergence
    assert conv > 2.5
    mask = np.zeros((N, N), dtype=np.uint8)
    mask[50, 660] = 3
    assert quadruples_from_mask(mask, TABLE)[0].direction == "north"  # grid-relative
    ((q, _, extras),), _ = describe_mask_geo(mask, t, UTM36, TABLE)
    assert q.direction == "northeast"
    frame = GeoFrame.from_grid(UTM36, t, N, N)
    fy, fx = frame.fractions(*frame.pixel_centers_to_crs(50, 660))
    assert fx > 2 / 3 > 660.5 / N and fy < 1 / 3


def test_frame_extent_and_centre():
    t = utm_north_up()
    frame = GeoFrame.from_grid(UTM36, t, N, N)
    assert not frame.image_terms
    e_min, e_max, n_min, n_max = frame.extent
    # a 500 m grid rotated by the 0.76 deg convergence and scaled by 1/k (k ~ 0.9998)
    conv = math.radians(Proj(UTM36).get_factors(*GAZA).meridian_convergence)
    half = 250.0 * (math.cos(conv) + math.sin(conv))
    for v in (-e_min, e_max, -n_min, n_max):
        assert v == pytest.approx(half, rel=1e-3)
    assert frame.to_local(*frame.center_xy) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert frame.bearing_distance(*frame.center_xy) == (0.0, 0.0)
    assert frame.fractions(*frame.center_xy) == pytest.approx((0.5, 0.5), abs=1e-5)
    assert frame.direction(*frame.center_xy) == "center"
    # arrays in, arrays out; pixel centres agree with rasterio's convention
    from rasterio.transform import xy

    rows, cols = np.array([0, 10, 999]), np.array([5, 500, 999])
    xs, ys = frame.pixel_centers_to_crs(rows, cols)
    rx, ry = xy(t, rows, cols, offset="center")
    assert np.allclose(xs, rx) and np.allclose(ys, ry)
    assert frame.direction(xs, ys) == ["northwest", "north", "southeast"]
    b, d = frame.bearing_distance(xs, ys)
    assert b.shape == (3,) and np.all((b >= 0) & (b < 360))


def test_bearings_all_around_are_0_360():
    t = utm_north_up()
    frame = GeoFrame.from_grid(UTM36, t, N, N)
    for az in (0, 45, 90, 135, 180, 225, 270, 315):
        lon, lat, _ = GEOD.fwd(*GAZA, az, 200.0)
        b, d = frame.bearing_distance(*utm_xy(lon, lat))
        assert angdiff(b, az) < 1e-6 and 0 <= b < 360
        assert d == pytest.approx(200.0, abs=1e-6)
    expected = {
        0: "north",
        90: "east",
        180: "south",
        270: "west",
        45: "northeast",
        135: "southeast",
        225: "southwest",
        315: "northwest",
    }
    for az, word in expected.items():
        lon, lat, _ = GEOD.fwd(*GAZA, az, 200.0 if az % 90 == 0 else 250.0)
        assert frame.direction(*utm_xy(lon, lat)) == word


def test_rasterio_crs_and_wkt_accepted():
    from rasterio.crs import CRS as RioCRS

    t = utm_north_up()
    f1 = GeoFrame.from_grid(UTM36, t, N, N)
    f2 = GeoFrame.from_grid(RioCRS.from_epsg(32636), t, N, N)
    f3 = GeoFrame.from_grid(CRS.from_epsg(32636).to_wkt(), t, N, N)
    assert f1.extent == f2.extent == f3.extent
    assert f1.center_lonlat == f2.center_lonlat == f3.center_lonlat


def test_bad_inputs():
    with pytest.raises(GeoError):
        GeoFrame.from_grid(UTM36, Affine(0, 0, 0, 0, 0, 0), 10, 10)  # degenerate
    with pytest.raises(ValueError):
        GeoFrame.from_grid(UTM36, utm_north_up(), 0, 10)
    with pytest.raises(GeoError) as exc:
        GeoFrame.from_grid("not a crs", utm_north_up(), 10, 10)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)
    with pytest.raises(GeoError):  # lat 1e7 degrees: not on the Earth
        GeoFrame.from_grid("EPSG:4326", Affine(1.0, 0, 0, 0, -1.0, 1e7), 10, 10)
    with pytest.raises(MaskError):
        describe_mask_geo(np.full((4, 4), 99, np.uint8), utm_north_up(), UTM36, TABLE)


# ---------------------------------------------------------------- many points at once

FRAMES = {
    "utm": (UTM36, utm_north_up()),
    "geographic": ("EPSG:4326", geographic_north_up()),
    "rotated 30": (UTM36, Affine.translation(*utm_xy(*GAZA)) * Affine.rotation(30.0) * Affine.scale(PX, -PX)),
    "south up": (UTM36, Affine(PX, 0.0, utm_xy(*GAZA)[0], 0.0, PX, utm_xy(*GAZA)[1])),
    "polar": ("EPSG:3413", Affine(0.5, 0.0, -200_000.0, 0.0, -0.5, -2_000_000.0)),
    "image terms": (None, None),
}


@pytest.mark.parametrize("kind", list(FRAMES))
def test_locations_of_many_points_are_those_of_locate(kind):
    crs, t = FRAMES[kind]
    frame = GeoFrame.from_grid(crs, t, N, N)
    rng = np.random.default_rng(4)
    cy = np.concatenate([rng.uniform(0, N, 300), [N / 2, N / 3, 2 * N / 3, 0.0, N]])
    cx = np.concatenate([rng.uniform(0, N, 300), [N / 2, N / 3, 2 * N / 3, N, 0.0]])
    many = frame.locations(cy, cx)
    for i in range(len(cy)):
        one = frame.locate(float(cy[i]), float(cx[i]))
        assert {k: (v[i] if v is not None else None) for k, v in many.items()} == one  # bit for bit
    # from_local undoes to_local
    x, y = frame.pixel_centers_to_crs(cy, cx)
    bx, by = frame.from_local(*frame.to_local(x, y))
    tol = 1e-9 if crs == "EPSG:4326" else 1e-6
    assert bx == pytest.approx(x, abs=tol) and by == pytest.approx(y, abs=tol)


# ---------------------------------------------------------------- ground areas


def test_ground_area_utm_square():
    t = utm_north_up()
    x, y = t * (400, 400)
    square = shapely.box(x, y - 100 * PX, x + 100 * PX, y)  # 100 x 100 pixels
    area = ground_area_m2(square, UTM36)
    naive = 100 * 100 * PX * PX
    assert area == pytest.approx(naive, rel=0.005)
    # exactly: projected area / areal scale factor of the projection there
    lon, lat = Transformer.from_crs(UTM36, "EPSG:4326", always_xy=True).transform(*square.centroid.coords[0])
    scale = Proj(UTM36).get_factors(lon, lat).areal_scale
    assert area == pytest.approx(naive / scale, rel=1e-5)
    assert area != pytest.approx(naive, rel=1e-4)  # the scale factor (~3e-4 here) is applied
    # pixel areas agree with it
    assert pixel_ground_area_m2(t, UTM36, 450, 450) * 10000 == pytest.approx(area, rel=1e-5)
    pa = pixel_areas(t, UTM36, N, N)
    rc, cc = np.zeros(N), np.zeros(N)
    rc[400:500] = 100
    cc[400:500] = 100
    assert pa.total(rc, cc) == pytest.approx(area, rel=1e-5)


def test_ground_area_geographic_square():
    t = geographic_north_up()
    lon, lat = t * (400, 400)
    dlon, dlat = t.a, -t.e
    square = shapely.box(lon, lat - 100 * dlat, lon + 100 * dlon, lat)
    area = ground_area_m2(square, "EPSG:4326")
    m_lon, m_lat = metres_per_degree(square.centroid.y)
    expected = 10000 * (dlon * m_lon) * (dlat * m_lat)
    assert area == pytest.approx(expected, rel=0.01)
    assert area == pytest.approx(expected, rel=1e-4)
    # independent: an equal-area projection (EASE-Grid 2.0 global, EPSG:6933)
    ease = to_ease(square)
    assert area == pytest.approx(ease.area, rel=1e-4)


def test_geographic_pixel_area_varies_with_latitude():
    # 0.01 deg pixels over 20 deg of latitude: per-row areas follow cos(lat)
    t = Affine(0.01, 0.0, 30.0, 0.0, -0.01, 50.0)
    h, w = 2000, 50
    pa = pixel_areas(t, "EPSG:4326", h, w)
    assert pa.row_m2.shape == (h,) and pa.col_m2.shape == (w,)
    for r in (0, 777, 1999):
        lat = 50.0 - (r + 0.5) * 0.01
        m_lon, m_lat = metres_per_degree(lat)
        assert pa.row_m2[r] == pytest.approx(0.01 * m_lon * 0.01 * m_lat, rel=1e-4)
        assert pixel_ground_area_m2(t, "EPSG:4326", r, 7) == pytest.approx(pa.row_m2[r], rel=1e-4)
    assert pa.row_m2[0] < pa.row_m2[-1]  # pixels grow towards the equator
    assert np.allclose(pa.col_m2, pa.col_m2[0])
    # area of the top 100 rows = geodesic area of that strip
    rc = np.zeros(h)
    rc[:100] = w
    strip = shapely.box(30.0, 49.0, 30.5, 50.0)
    assert pa.total(rc, np.full(w, 100)) == pytest.approx(ground_area_m2(strip, 4326), rel=1e-4)


def test_geographic_rotated_90_pixel_areas_follow_columns():
    # rotated 90 deg: latitude changes along columns; the row+column model stays exact
    t = Affine(0.0, 0.01, 30.0, -0.01, 0.0, 50.0)
    pa = pixel_areas(t, "EPSG:4326", 50, 2000)
    for c in (0, 1999):
        assert pa.at(3, c) == pytest.approx(pixel_ground_area_m2(t, 4326, 3, c), rel=1e-4)


def test_ground_area_holes_orientation_and_empty():
    t = utm_north_up()
    x, y = t * (0, 0)
    outer = shapely.box(x, y - 100, x + 100, y)
    hole = shapely.box(x + 25, y - 75, x + 75, y - 25)
    with_hole = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    a_outer, a_hole = ground_area_m2(outer, UTM36), ground_area_m2(hole, UTM36)
    assert ground_area_m2(with_hole, UTM36) == pytest.approx(a_outer - a_hole, rel=1e-8)
    assert ground_area_m2(shapely.Polygon(outer.exterior.coords[::-1]), UTM36) == pytest.approx(a_outer)
    assert ground_area_m2(
        shapely.Polygon(with_hole.exterior.coords[::-1], [hole.exterior.coords]), UTM36
    ) == pytest.approx(a_outer - a_hole)
    multi = shapely.MultiPolygon([outer, shapely.box(x + 200, y - 100, x + 300, y)])
    assert ground_area_m2(multi, UTM36) == pytest.approx(2 * a_outer, rel=1e-5)
    assert ground_area_m2(shapely.Polygon(), UTM36) == 0.0


def test_ground_area_large_polygon_is_densified():
    # a 1 x 1 degree box: edges along parallels are not geodesics; densifying follows them
    box = shapely.box(34.0, 31.0, 35.0, 32.0)
    area = ground_area_m2(box, 4326)
    ease = to_ease(shapely.segmentize(box, 0.0001))
    assert area == pytest.approx(ease.area, rel=1e-8)
    raw = abs(GEOD.polygon_area_perimeter(*box.exterior.xy)[0])  # geodesic edges
    assert abs(area - raw) / area > 1e-6  # densifying matters at this size (~5e-6)


# ---------------------------------------------------------------- ground areas in bulk


def _test_polygons(x: float, y: float, size: float, n: int, seed: int) -> list:
    """n polygons of about ``size`` CRS units around (x, y): rectangles, rounded blobs,
    boxes with a hole, two-part multipolygons and pixel staircases."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = size * rng.uniform(0.05, 1.0)
        px, py = x + rng.uniform(-3, 3) * size, y + rng.uniform(-3, 3) * size
        kind = i % 5
        if kind == 0:
            g = shapely.box(px, py, px + s, py + s * rng.uniform(0.1, 1.0))
        elif kind == 1:
            g = shapely.Point(px, py).buffer(s / 2, quad_segs=6)
        elif kind == 2:
            g = shapely.box(px, py, px + s, py + s).difference(
                shapely.box(px + s / 4, py + s / 4, px + s / 2, py + s / 2)
            )
        elif kind == 3:
            g = shapely.MultiPolygon(
                [shapely.box(px, py, px + s / 3, py + s / 3), shapely.box(px + s / 2, py, px + s, py + s / 5)]
            )
        else:
            k = 8  # a staircase of pixel-like steps, as the vectorizer makes
            g = shapely.union_all(
                [shapely.box(px + s * j / k, py, px + s * (j + 1) / k, py + s * (k - j) / k) for j in range(k)]
            )
        out.append(g)
    return out


def _local_equal_area(geom, crs) -> float:
    """Independent ground area: the polygon densified and projected to a Lambert azimuthal
    equal-area frame (WGS84) centred on itself."""
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(*geom.centroid.coords[0])
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")
    tr = Transformer.from_crs(crs, laea, always_xy=True)
    x0, y0, x1, y1 = geom.bounds
    dense = shapely.segmentize(geom, max(x1 - x0, y1 - y0) / 128)
    return shapely.transform(dense, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))).area


# (name, CRS, lon, lat, metres per CRS unit there, roughly)
BULK_CASES = [
    ("UTM 36N, Gaza", UTM36, 34.45, 31.5, 1.0),
    ("UTM 36N, 6 deg off its meridian", UTM36, 27.5, 5.0, 1.0),
    ("UTM 33N at 60N", "EPSG:32633", 15.0, 60.0, 1.0),
    ("geographic, 31N", "EPSG:4326", 34.45, 31.5, 111_000.0 * 0.85),
    ("geographic, 70N", "EPSG:4326", 20.0, 70.0, 111_000.0 * 0.34),
    ("geographic, 85S", "EPSG:4326", 20.0, -85.0, 111_000.0 * 0.087),
    ("polar stereographic north (EPSG:3413), 75N", "EPSG:3413", -40.0, 75.0, 1.0),
    ("Antarctic polar stereographic (EPSG:3031), 80S", "EPSG:3031", 60.0, -80.0, 1.0),
    ("web mercator, 60N", "EPSG:3857", 10.0, 60.0, 0.5),
    ("web mercator, 80N", "EPSG:3857", 10.0, 80.0, 0.174),
    ("web mercator, 85N", "EPSG:3857", 10.0, 85.0, 0.087),
    ("world mercator (EPSG:3395), 80N", "EPSG:3395", 10.0, 80.0, 0.174),
]


@pytest.mark.parametrize("name,crs,lon,lat,unit_m", BULK_CASES, ids=[c[0] for c in BULK_CASES])
@pytest.mark.parametrize("size_m", [0.5, 5.0, 50.0, 500.0, 1900.0])
def test_bulk_ground_areas_agree_with_the_exact_path(name, crs, lon, lat, unit_m, size_m):
    # the stated contract (docs/design.md §3.3): within BULK_AREA_RTOL of ground_area_m2, plus
    # BULK_AREA_ATOL_M2 — the noise of the exact path's geodesic sum on lon/lat, whatever the size
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    geoms = _test_polygons(x, y, size_m / unit_m, 25, seed=int(size_m * 10))
    bulk = ground_areas_m2(geoms, crs)
    exact = np.array([ground_area_m2(g, crs) for g in geoms])
    assert bulk == pytest.approx(exact, rel=BULK_AREA_RTOL, abs=BULK_AREA_ATOL_M2)
    # and against an independent equal-area reference, which it matches more closely still
    reference = np.array([_local_equal_area(g, crs) for g in geoms])
    # (plus 1e-8 m²: a 0.5 m polygon at y ~ 2e7 m of Mercator at 85N meets the coordinates' own rounding)
    assert bulk == pytest.approx(reference, rel=2e-6, abs=1e-8)


def test_bulk_ground_areas_keep_the_exact_path_for_wide_polygons_and_other_geometries():
    x, y = utm_xy(*GAZA)
    wide = shapely.box(x, y, x + 1.5 * BULK_AREA_MAX_SPAN_M, y + 100.0)
    small = shapely.box(x, y, x + 10.0, y + 10.0)
    collection = shapely.GeometryCollection([small, shapely.LineString([(x, y), (x + 5, y)])])
    line = shapely.LineString([(x, y), (x + 50, y)])
    areas = ground_areas_m2(np.array([[wide, small], [collection, None]], dtype=object), UTM36)
    assert areas.shape == (2, 2)
    assert areas[0, 0] == ground_area_m2(wide, UTM36)  # measured exactly, not in bulk
    assert areas[1, 0] == ground_area_m2(collection, UTM36)
    assert areas[0, 1] == pytest.approx(ground_area_m2(small, UTM36), rel=BULK_AREA_RTOL, abs=BULK_AREA_ATOL_M2)
    assert areas[1, 1] == 0.0
    assert ground_areas_m2([line, shapely.Polygon()], UTM36).tolist() == [0.0, 0.0]
    assert ground_areas_m2([], "EPSG:4326").shape == (0,)
    # a wide polygon in a geographic CRS: its span on the ground, not in degrees, decides
    deg = shapely.box(34.0, 31.0, 34.05, 31.01)  # ~4.7 km wide
    assert ground_areas_m2([deg], 4326)[0] == ground_area_m2(deg, 4326)


def test_bulk_ground_areas_do_not_depend_on_the_batch():
    x, y = utm_xy(*GAZA)
    geoms = _test_polygons(x, y, 20.0, 40, seed=3)
    far = [shapely.box(x + 90_000, y + 90_000, x + 90_010, y + 90_007)]
    together = ground_areas_m2(geoms + far, UTM36)
    assert together[:-1].tolist() == ground_areas_m2(geoms, UTM36).tolist()
    assert together[-1] == ground_areas_m2(far, UTM36)[0]


def test_bulk_ground_areas_refuse_what_cannot_be_placed():
    with pytest.raises(GeoError):
        ground_areas_m2([shapely.box(0.0, 1e7, 1.0, 1e7 + 1.0)], "EPSG:4326")
    with pytest.raises(ValueError):
        ground_areas_m2([shapely.box(0, 0, 1, 1)], None)


# ---------------------------------------------------------------- image terms


def test_image_terms_when_no_crs():
    mask = np.zeros((300, 600), dtype=np.uint8)
    mask[10:40, 500:590] = 1  # top right
    mask[250:290, 20:60] = 4  # bottom left
    items, image_terms = describe_mask_geo(mask, None, None, TABLE)
    assert image_terms is True
    by_id = {q.class_id: (q, text, extras) for q, text, extras in items}
    assert by_id[1][0].direction == "northeast" and by_id[4][0].direction == "southwest"
    assert [q for q, _, _ in items] == quadruples_from_mask(mask, TABLE)  # pixel quantities too
    q, text, extras = by_id[1]
    assert extras["area_m2"] is None and extras["distance_m"] is None
    assert extras["lon"] is None and extras["lat"] is None
    # image bearing: up = 0, right = 90; centroid (25, 545) from centre (150, 300)
    assert extras["bearing_deg"] == pytest.approx(math.degrees(math.atan2(245, 125)))
    assert extras["distance_px"] == pytest.approx(math.hypot(245, 125))
    frame = GeoFrame.from_grid(None, None, 600, 300)
    assert frame.image_terms and frame.center_lonlat is None
    assert frame.direction(545.0, 25.0) == "northeast"  # x = col, y = row
    assert frame.fractions(300.0, 150.0) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError):
        frame.to_lonlat(1.0, 1.0)


def test_image_terms_ignore_transform_orientation():
    # no CRS: the rows/cols rule even with a rotated transform (image up = north)
    mask = block(slice(0, 30), slice(0, 30), cid=2, shape=(300, 300))
    t = Affine(0.0, -2.0, 10.0, -2.0, 0.0, 10.0)
    ((q, _, _),), image_terms = describe_mask_geo(mask, t, None, TABLE)
    assert image_terms and q.direction == "northwest"


# ---------------------------------------------------------------- describe_mask_geo


def test_image_terms_third_lines_match_image_rule():
    # centroids exactly on third lines: the same (exact) bands as quadruples_from_mask
    for h, w in ((9, 9), (30, 30), (999, 3)):
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[h // 3 - 1 : h // 3 + 1, w // 3 - 1 : w // 3 + 1] = 1  # mean centre on the lines
        mask[2 * h // 3 - 1 : 2 * h // 3 + 1, 0] = 2
        items, _ = describe_mask_geo(mask, None, None, TABLE)
        assert [q for q, _, _ in items] == quadruples_from_mask(mask, TABLE)


def two_class_mask() -> np.ndarray:
    mask = np.zeros((N, N), dtype=np.uint8)
    mask[100:130, 850:880] = 1  # 900 px, north-east
    mask[850:950, 50:150] = 4  # 10000 px, south-west
    return mask


def test_describe_mask_geo_two_classes_ground_quantities():
    mask = two_class_mask()
    t = utm_north_up()
    items, image_terms = describe_mask_geo(mask, t, UTM36, TABLE)
    assert image_terms is False
    assert [q.class_id for q, _, _ in items] == [1, 4]
    (q1, s1, e1), (q4, s4, e4) = items
    pix_area = pixel_ground_area_m2(t, UTM36, 500, 500)
    assert pix_area == pytest.approx(0.25, rel=1e-3)
    assert (q1.direction, q1.pixels) == ("northeast", 900)
    assert e1["area_m2"] == pytest.approx(900 * pix_area, rel=1e-5)  # ~225 m2
    assert q1.quantity == "a few"  # 225 m2 >= 800 * 0.5^2 = 200 m2
    assert s1 == "There are a few destroyed buildings in the northeast region."
    assert (q4.direction, q4.pixels) == ("southwest", 10000)
    assert e4["area_m2"] == pytest.approx(10000 * pix_area, rel=1e-5)  # ~2500 m2
    assert q4.quantity == "multiple"  # >= 8000 * 0.25 m2
    assert "southwest" in s4 and "agricultural fields" in s4
    for e in (e1, e4):
        assert set(e) == {"bearing_deg", "distance_m", "area_m2", "lon", "lat"}
        assert 0 <= e["bearing_deg"] < 360 and e["distance_m"] > 0
    assert angdiff(e1["bearing_deg"], 45) < 5 and angdiff(e4["bearing_deg"], 225) < 5
    # lon/lat are those of the centroid
    lon, lat = Transformer.from_crs(UTM36, "EPSG:4326", always_xy=True).transform(*t.__mul__((865.0, 115.0)))
    assert (e1["lon"], e1["lat"]) == pytest.approx((lon, lat), abs=1e-9)


def test_describe_mask_geo_same_pixels_finer_gsd():
    # the same 900 pixels at 0.25 m cover 56.25 m2 < 800 * 0.5^2 m2 -> "a single"
    mask = two_class_mask()
    t = utm_north_up(px=0.25)
    items, _ = describe_mask_geo(mask, t, UTM36, TABLE)
    (q1, s1, e1), (q4, _, e4) = items
    assert e1["area_m2"] == pytest.approx(56.25, rel=1e-3)
    assert q1.quantity == "a single" and q1.direction == "northeast"
    assert s1 == "There is a single destroyed building in the northeast region."
    assert e4["area_m2"] == pytest.approx(625.0, rel=1e-3)
    assert q4.quantity == "a few"  # 200 <= 625 < 1000 m2


def test_describe_mask_geo_geographic_areas():
    mask = two_class_mask()
    t = geographic_north_up()
    items, image_terms = describe_mask_geo(mask, t, "EPSG:4326", TABLE)
    assert not image_terms
    (q1, _, e1), (q4, _, e4) = items
    assert (q1.direction, q4.direction) == ("northeast", "southwest")
    assert e1["area_m2"] == pytest.approx(225.0, rel=1e-3)
    assert e4["area_m2"] == pytest.approx(2500.0, rel=1e-3)
    assert (q1.quantity, q4.quantity) == ("a few", "multiple")


def test_describe_mask_geo_empty_and_no_change():
    t = utm_north_up()
    assert describe_mask_geo(np.zeros((0, 0), np.uint8), t, UTM36, TABLE) == ([], False)
    assert describe_mask_geo(np.zeros((50, 50), np.uint8), t, UTM36, TABLE) == ([], False)
    assert describe_mask_geo(np.zeros((50, 50), np.uint8), None, None, TABLE) == ([], True)


def test_describe_mask_geo_centre_class():
    # a class whose centroid is the scene centre: "center", bearing 0, distance 0
    mask = np.zeros((N, N), dtype=np.uint8)
    mask[490:510, 490:510] = 6
    ((q, text, e),), _ = describe_mask_geo(mask, utm_north_up(), UTM36, TABLE)
    assert q.direction == "center" and "center" in text
    assert e["distance_m"] == pytest.approx(0.0, abs=1e-6) and e["bearing_deg"] < 360


def test_determinism():
    mask = two_class_mask()
    t = utm_north_up()
    a = describe_mask_geo(mask, t, UTM36, TABLE, rng=random.Random(7))
    b = describe_mask_geo(mask, t, UTM36, TABLE, rng=random.Random(7))
    assert a == b
    c = describe_mask_geo(mask, t, UTM36, TABLE, rng=np.random.default_rng(3))
    d = describe_mask_geo(mask, t, UTM36, TABLE, rng=np.random.default_rng(3))
    assert c == d
    assert GeoFrame.from_grid(UTM36, t, N, N) == GeoFrame.from_grid(UTM36, t, N, N)
    # the same quadruples whatever the template draw
    assert [x[0] for x in a[0]] == [x[0] for x in c[0]]


def test_a_raster_is_described_strip_by_strip_exactly_as_whole(tmp_path):
    """describe reads a class raster in strips (memory flat in its size): the counts, and so
    every quadruple, sentence and area, equal those of the whole mask at once."""
    import rasterio
    from rasterio.transform import from_origin

    from s2m_geo.classes import load_class_table
    from s2m_geo.describe.geo import describe_counts_geo, describe_mask_geo
    from s2m_geo.describe.rules import class_row_col_counts
    from s2m_geo.evaluate import class_counts

    table = load_class_table()
    rng = np.random.default_rng(3)
    mask = rng.integers(0, table.num_classes, (101, 77)).astype(np.uint8)
    mask[:9] = 255  # nodata rows count as no change
    t = from_origin(637000, 3486500, 0.5, 0.5)
    path = tmp_path / "m.tif"
    prof = dict(driver="GTiff", width=77, height=101, count=1, dtype="uint8", crs="EPSG:32636", transform=t, nodata=255)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(mask, 1)
    whole = np.where(mask == 255, 0, mask)
    per_row, per_col, profile = class_counts(path, table, pixels=7 * 77 + 5)  # strips of 7 rows
    ref_row, ref_col = class_row_col_counts(whole, table.num_classes)
    np.testing.assert_array_equal(per_row, ref_row)
    np.testing.assert_array_equal(per_col, ref_col)
    assert describe_counts_geo(per_row, per_col, t, profile["crs"], table) == describe_mask_geo(
        whole, t, profile["crs"], table
    )


@pytest.mark.parametrize("tiled", [True, False])
def test_a_sparse_raster_is_counted_from_its_stored_blocks_alone(tmp_path, monkeypatch, tiled):
    """describe of a sparse GeoTIFF (predict's output over a mosaic's nodata frame) reads only
    the blocks the file stores, tiles or strips; the counts are those of the whole mask, the
    blocks never written counted as no change. An unknown id in a stored block is still found."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from s2m_geo import evaluate
    from s2m_geo.classes import load_class_table
    from s2m_geo.describe.rules import class_row_col_counts
    from s2m_geo.errors import InputError

    table = load_class_table()
    h, w = 150, 130
    layout = dict(tiled=True, blockxsize=32, blockysize=32) if tiled else dict(tiled=False, blockysize=8)
    prof = dict(driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs="EPSG:32636", nodata=255)
    prof.update(transform=from_origin(637000, 3486500, 0.5, 0.5), compress="deflate", sparse_ok=True, **layout)
    rng = np.random.default_rng(5)
    mask = np.full((h, w), 255, np.uint8)
    path = tmp_path / "sparse.tif"
    with rasterio.open(path, "w", **prof) as ds:
        for r, c in [(0, 32), (40, 70), (100, 0), (120, 98)]:  # written blocks (or strips)
            part = rng.integers(0, table.num_classes, (30, 32)).astype(np.uint8)
            part[:3] = 255
            mask[r : r + 30, c : c + 32] = part
            ds.write(part, 1, window=Window(c, r, 32, 30))
    reads = []
    read = evaluate._read_classes
    monkeypatch.setattr(evaluate, "_read_classes", lambda ds, win, p: reads.append(win) or read(ds, win, p))
    per_row, per_col, _ = evaluate.class_counts(path, table, pixels=64 * 64)
    ref_row, ref_col = class_row_col_counts(np.where(mask == 255, 0, mask), table.num_classes)
    np.testing.assert_array_equal(per_row, ref_row)
    np.testing.assert_array_equal(per_col, ref_col)
    with rasterio.open(path) as ds:
        held, (bh, bw) = evaluate.written_blocks(ds), ds.block_shapes[0]
    assert held is not None and 0 < held.sum() < held.size
    stored = np.kron(held, np.ones((bh, bw), bool))[:h, :w].sum()
    assert sum(win.height * win.width for win in reads) == stored < h * w  # the stored blocks alone
    with rasterio.open(path, "r+") as ds:
        ds.write(np.full((2, 2), 99, np.uint8), 1, window=Window(71, 45, 2, 2))
    with pytest.raises(InputError, match="value 99"):
        evaluate.class_counts(path, table)
