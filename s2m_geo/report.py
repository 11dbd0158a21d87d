"""What a batch hands to the analyst: quicklooks, the merged GeoPackage and the reports.

- :func:`render_quicklook` — a PNG per scene: the change classes over the post image
  (resampled onto the change raster's grid), a legend with the class colours, a scale bar
  (true ground distance) and a north arrow (true north, also for rotated grids);
- :func:`write_merged` — ``all_changes.gpkg``: the ``changes`` and ``scenes`` layers of every
  complete scene, with the same QGIS styles as a single scene's GeoPackage;
- :func:`write_reports` — ``report.md``, ``report.html`` and ``report.json``: per-scene and
  total counts and areas by class, each scene's sentences (from its ``scenes`` layer), the
  failed scenes with their errors.

Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .batch import BatchResult, SceneOutcome
    from .classes import ClassTable

NODATA_CLASS = 255
MERGE_CHUNK_ROWS = 50_000  # rows of the merged layers held in memory at once


def _tmp_beside(final: Path, suffix: str = "") -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".partial{suffix}", dir=final.parent)
    os.close(fd)
    return Path(name)


def _install(tmp: Path, final: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, final)


def _write_text(path: Path, text: str) -> Path:
    tmp = _tmp_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        _install(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def class_label(c) -> str:
    """'destroyed building', 'newly built greenhouse', ..."""
    return f"{c.change_type} {c.category}".strip() or c.name


# --- quicklook ---------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _stretch(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Bands to 0..255: uint8 as is, other types by a 2-98 % stretch over valid pixels."""
    if data.dtype == np.uint8:
        return data
    out = np.zeros(data.shape, np.uint8)
    for i, band in enumerate(data.astype(np.float64)):
        vals = band[valid]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, (2, 98))
        if hi <= lo:
            hi = lo + 1.0
        out[i] = np.clip((band - lo) * 255.0 / (hi - lo), 0, 255).astype(np.uint8)
    return out


def _read_post_on_grid(post: str, crs, transform, width: int, height: int,
                       bands: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The post image on the quicklook grid: (3, H, W) uint8 and the valid mask."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with rasterio.open(post) as ds:
        if bands and all(1 <= b <= ds.count for b in bands):
            idx = list(bands)[:3]
        else:
            idx = [1, 2, 3] if ds.count >= 3 else [1]
        if len(idx) < 3:
            idx = (idx * 3)[:3]
        if crs is None or ds.crs is None:  # no CRS: the grid is the image itself
            data = ds.read(idx, out_shape=(3, height, width), resampling=Resampling.bilinear)
            valid = ds.dataset_mask(out_shape=(height, width)) > 0
        else:
            with WarpedVRT(ds, crs=crs, transform=transform, width=width, height=height,
                           resampling=Resampling.bilinear) as vrt:
                data = vrt.read(idx)
                valid = vrt.dataset_mask() > 0
    return _stretch(data, valid), valid


def _north_vector(crs, transform, width: int, height: int) -> tuple[float, float] | None:
    """Unit vector (dx, dy) in image pixels pointing to true north from the image centre."""
    if crs is None:
        return None
    from pyproj import Transformer

    try:
        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        x, y = transform * (width / 2.0, height / 2.0)
        lon, lat = to_ll.transform(x, y)
        step = 1e-4 if lat < 89.0 else -1e-4
        x2, y2 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat + step)
        inv = ~transform
        c1, r1 = inv * (x, y)
        c2, r2 = inv * (x2, y2)
        dx, dy = (c2 - c1), (r2 - r1)
        if step < 0:
            dx, dy = -dx, -dy
        n = math.hypot(dx, dy)
        if not math.isfinite(n) or n == 0:
            return None
        return dx / n, dy / n
    except Exception:
        return None


def _metres_per_pixel(crs, transform, width: int, height: int) -> float | None:
    """Ground metres per image pixel along the centre row (geodesic)."""
    if crs is None:
        return None
    from pyproj import Geod, Transformer

    try:
        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        c0, c1, r = width * 0.25, width * 0.75, height / 2.0
        (x0, y0), (x1, y1) = transform * (c0, r), transform * (c1, r)
        lon0, lat0 = to_ll.transform(x0, y0)
        lon1, lat1 = to_ll.transform(x1, y1)
        _, _, dist = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)
        mpp = dist / (c1 - c0)
        return mpp if math.isfinite(mpp) and mpp > 0 else None
    except Exception:
        return None


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``limit``."""
    if limit <= 0:
        return 0.0
    k = math.floor(math.log10(limit))
    for m in (5, 2, 1):
        if m * 10 ** k <= limit:
            return float(m * 10 ** k)
    return float(10 ** (k - 1) * 5)


def _length_text(metres: float) -> str:
    if metres >= 1000:
        km = metres / 1000
        return f"{km:g} km"
    return f"{metres:g} m"


def render_quicklook(changes_tif: str | Path, post: str | Path, png: str | Path, table: "ClassTable",
                     title: str = "", bands: list[int] | None = None, max_size: int = 1024) -> Path:
    """Write a PNG: change classes over the post image, legend, scale bar, north arrow.

    The image is the change raster's grid reduced to at most ``max_size`` pixels a side;
    the post scene is resampled onto it (bilinear; ``bands`` picks its RGB bands, default
    1,2,3). Change pixels are tinted with their class colour and outlined; pixels without
    a prediction (nodata) are dimmed.
    """
    import rasterio
    from PIL import Image, ImageDraw
    from rasterio.enums import Resampling

    png = Path(png)
    with rasterio.open(changes_tif) as cds:
        h, w = cds.height, cds.width
        f = max(h, w) / max_size if max(h, w) > max_size else 1.0
        qw, qh = max(1, round(w / f)), max(1, round(h / f))
        classes = cds.read(1, out_shape=(qh, qw), resampling=Resampling.nearest)
        crs = cds.crs
        transform = cds.transform * cds.transform.scale(w / qw, h / qh)
    rgb, valid = _read_post_on_grid(str(post), crs, transform, qw, qh, bands)
    img = np.moveaxis(rgb, 0, -1).astype(np.float32)
    img[~valid] = 40.0
    nodata = classes == NODATA_CLASS
    img[nodata] *= 0.35
    ids = [c.id for c in table.change_classes]
    change = np.isin(classes, ids)
    # outline: change pixels with a 4-neighbour of another class
    edge = np.zeros_like(change)
    padded = np.pad(classes, 1, mode="edge")
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy:dy + qh, dx:dx + qw] != classes
    edge &= change
    for c in table.change_classes:
        sel = classes == c.id
        if not sel.any():
            continue
        col = np.array(c.rgb, np.float32)
        img[sel] = img[sel] * 0.45 + col * 0.55
        img[sel & edge] = col
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")

    font, small = _font(14), _font(12)
    pad, sw = 8, 14
    width = max(qw, 420)
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_w(text: str, fnt) -> int:
        box = draw_probe.textbbox((0, 0), text, font=fnt)
        return box[2] - box[0]

    items = [(class_label(c), c.rgb) for c in table.change_classes]
    if nodata.any():
        items.append(("no prediction (nodata)", (60, 60, 60)))
    rows, line, x = [], [], pad
    for label, color in items:
        iw = sw + 4 + text_w(label, small) + 14
        if line and x + iw > width - pad:
            rows.append(line)
            line, x = [], pad
        line.append((label, color, x))
        x += iw
    if line:
        rows.append(line)
    line_h = 20
    panel_h = pad + line_h + len(rows) * line_h + 34 + pad
    canvas = Image.new("RGB", (width, qh + panel_h), (255, 255, 255))
    canvas.paste(base, (0, 0))
    d = ImageDraw.Draw(canvas)

    # north arrow on the image, top right
    north = _north_vector(crs, transform, qw, qh)
    if north is not None:
        r = 18
        cx, cy = qw - r - 8, r + 22
        d.ellipse((cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4), fill=(255, 255, 255), outline=(0, 0, 0))
        ux, uy = north
        px, py = -uy, ux  # perpendicular
        tip = (cx + ux * r, cy + uy * r)
        tail = (cx - ux * r * 0.7, cy - uy * r * 0.7)
        left = (tail[0] + px * r * 0.5, tail[1] + py * r * 0.5)
        right = (tail[0] - px * r * 0.5, tail[1] - py * r * 0.5)
        d.polygon([tip, left, (cx - ux * r * 0.3, cy - uy * r * 0.3)], fill=(0, 0, 0))
        d.polygon([tip, right, (cx - ux * r * 0.3, cy - uy * r * 0.3)], fill=(255, 255, 255), outline=(0, 0, 0))
        nx, ny = cx + ux * (r + 14), cy + uy * (r + 14)
        box = d.textbbox((0, 0), "N", font=font)
        nw, nh = box[2] - box[0], box[3] - box[1]
        d.rectangle((nx - nw / 2 - 2, ny - nh / 2 - 3, nx + nw / 2 + 2, ny + nh / 2 + 3), fill=(255, 255, 255))
        d.text((nx, ny), "N", font=font, fill=(0, 0, 0), anchor="mm")

    y = qh + pad
    d.text((pad, y), title or Path(str(changes_tif)).stem, font=font, fill=(0, 0, 0))
    y += line_h
    for row in rows:
        for label, color, x in row:
            d.rectangle((x, y + 2, x + sw, y + 2 + sw), fill=tuple(color), outline=(0, 0, 0))
            d.text((x + sw + 4, y + 1), label, font=small, fill=(0, 0, 0))
        y += line_h
    # scale bar, bottom left
    mpp = _metres_per_pixel(crs, transform, qw, qh)
    y += 6
    if mpp is not None:
        length = nice_length(min(qw, width) * 0.3 * mpp)
        bar = max(1, round(length / mpp))
        segs = 4
        for i in range(segs):
            x0 = pad + i * bar / segs
            d.rectangle((x0, y, pad + (i + 1) * bar / segs, y + 6), fill=(0, 0, 0) if i % 2 == 0 else (255, 255, 255),
                        outline=(0, 0, 0))
        d.text((pad, y + 9), "0", font=small, fill=(0, 0, 0))
        d.text((pad + bar, y + 9), _length_text(length), font=small, fill=(0, 0, 0), anchor="ma")
    else:
        d.text((pad, y), "no CRS: image terms, no scale", font=small, fill=(0, 0, 0))

    tmp = _tmp_beside(png, ".png")
    try:
        canvas.save(tmp, format="PNG", compress_level=6)
        _install(tmp, png)
    finally:
        tmp.unlink(missing_ok=True)
    return png


# --- merged GeoPackage -------------------------------------------------------------------------


def write_merged(path: Path, outcomes: list["SceneOutcome"], table: "ClassTable") -> Path | None:
    """``all_changes.gpkg``: both layers of every complete scene (appended scene by scene), in
    their common CRS or, when scenes differ, EPSG:4326; QGIS styles as for one scene.
    With no complete scene there is no merged file (a stale one is removed)."""
    import pyogrio
    from pyproj import CRS

    from .batch import scene_files
    from .vector.output import changes_qml, scenes_qml, write_layer_styles

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
    import pandas as pd

    tmp = _tmp_beside(path, ".gpkg")
    tmp.unlink()  # GDAL creates the file itself
    try:
        created = False
        for layer in ("changes", "scenes"):
            buffer: list = []
            rows = 0
            written = False

            def flush() -> None:  # one write per chunk: GeoPackage writes cost per call, memory per row
                nonlocal buffer, rows, written, created
                if not buffer:
                    return
                df = pd.concat(buffer, ignore_index=True) if len(buffer) > 1 else buffer[0]
                df.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio", geometry_type="Polygon",
                           append=created and (written or layer == "scenes"))
                created = written = True
                buffer, rows = [], 0

            for o, f, crs in zip(outcomes, files, crss):
                df = pyogrio.read_dataframe(f, layer=layer)
                if crs is not None and target is not None and crs != target:
                    df = df.to_crs(target)
                if layer == "scenes":
                    df["pre_date"] = pd.Series([o.job.pre_date] * len(df), dtype=object)
                    df["post_date"] = pd.Series([o.job.post_date] * len(df), dtype=object)
                buffer.append(df)
                rows += len(df)
                if rows >= MERGE_CHUNK_ROWS:
                    flush()
            flush()
        write_layer_styles(tmp, {"changes": changes_qml(table), "scenes": scenes_qml()})
        _install(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        for extra in tmp.parent.glob(tmp.name + "-*"):  # SQLite journal of an interrupted write
            extra.unlink(missing_ok=True)
    return path


# --- reports -----------------------------------------------------------------------------------


def _summary(outcome: "SceneOutcome") -> dict[str, Any]:
    return ((outcome.marker or {}).get("summary")) or {}


def report_data(result: "BatchResult", table: "ClassTable") -> dict[str, Any]:
    """Everything the reports show, as plain data (also written as report.json)."""
    from . import __version__
    from .batch import scene_files

    scenes = []
    totals = {c.name: {"label": class_label(c), "color": c.color, "count": 0, "area_m2": 0.0, "scenes": 0}
              for c in table.change_classes}
    for o in result.outcomes:
        s = _summary(o)
        files = {k: p.name for k, p in scene_files(result.out_dir, o.scene_id).items() if k != "marker"}
        row = {"scene_id": o.scene_id, "status": o.status, "error": o.error, "pre": o.job.pre,
               "post": o.job.post, "pre_date": o.job.pre_date, "post_date": o.job.post_date,
               "seconds": round(o.seconds, 3), "worker": o.worker}
        if o.complete:
            row.update(changes=s.get("changes", 0), changed_area_m2=s.get("changed_area_m2", 0.0),
                       classes=s.get("classes", {}), sentences=s.get("sentences", []),
                       description=s.get("description", ""), files=files,
                       size_px=[s.get("width"), s.get("height")])
            for name, v in (s.get("classes") or {}).items():
                if name in totals:
                    totals[name]["count"] += int(v.get("count", 0))
                    totals[name]["area_m2"] += float(v.get("area_m2", 0.0))
                    totals[name]["scenes"] += 1 if v.get("count", 0) else 0
        scenes.append(row)
    n = len(result.outcomes)
    counts = {k: sum(o.status == k for o in result.outcomes) for k in ("done", "skipped", "failed")}
    return {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "s2m_geo": __version__,
        "source": result.source, "model": result.model, "out_dir": str(result.out_dir),
        "merged": result.merged.name if result.merged else None, "seconds": round(result.seconds, 3),
        "scenes_total": n, "complete": counts["done"] + counts["skipped"], **counts,
        "exit_code": result.exit_code,
        "totals": {"classes": totals, "changes": sum(v["count"] for v in totals.values()),
                   "changed_area_m2": sum(v["area_m2"] for v in totals.values())},
        "scenes": scenes,
    }


def _md(text: Any) -> str:
    s = " ".join(str(text).split())
    for ch in "\\|*`[]<>":
        s = s.replace(ch, "\\" + ch)
    return s


def _area(a: float) -> str:
    return f"{a:,.0f}" if a >= 10 else f"{a:,.1f}"


def _status_line(d: dict) -> str:
    parts = [f"{d['complete']} complete ({d['done']} processed in this run, {d['skipped']} already complete)"]
    if d["failed"]:
        parts.append(f"{d['failed']} failed")
    return f"{d['scenes_total']}: " + ", ".join(parts)


def _exit_text(code: int) -> str:
    return "0 — every scene complete" if code == 0 else f"{code} — some scenes failed (see below)"


def render_markdown(d: dict[str, Any], table: "ClassTable") -> str:
    classes = list(table.change_classes)
    out = ["# s2m-geo batch report", "",
           "| | |", "|---|---|",
           f"| generated | {d['generated']} (s2m-geo {d['s2m_geo']}) |",
           f"| input | {_md(d['source'] or '—')} |",
           f"| model | {_md(d['model'])} |",
           f"| output folder | {_md(d['out_dir'])} |",
           f"| scenes | {_status_line(d)} |",
           f"| merged layers | {_md(d['merged'] or 'none (no complete scene)')} |",
           f"| exit code | {_exit_text(d['exit_code'])} |",
           f"| time | {d['seconds']:.1f} s |", "",
           "## Totals by class", "",
           "| class | colour | polygons | area (m²) | scenes with it |", "|---|---|---:|---:|---:|"]
    for c in classes:
        t = d["totals"]["classes"][c.name]
        out.append(f"| {_md(t['label'])} | `{c.color}` | {t['count']} | {_area(t['area_m2'])} | {t['scenes']} |")
    out += [f"| **all changes** | | **{d['totals']['changes']}** | **{_area(d['totals']['changed_area_m2'])}** | |",
            "", "## Scenes", "",
            "| scene | pre date | post date | status | polygons | changed area (m²) | "
            + " | ".join(_md(class_label(c)) for c in classes) + " |",
            "|---|---|---|---|---:|---:|" + "---:|" * len(classes)]
    for s in d["scenes"]:
        if s["status"] == "failed":
            cells = ["—", "—"] + ["—"] * len(classes)
        else:
            cells = [str(s["changes"]), _area(s["changed_area_m2"])]
            for c in classes:
                v = s["classes"].get(c.name, {})
                cells.append(f"{v.get('count', 0)} · {_area(v.get('area_m2', 0.0))}" if v.get("count") else "–")
        status = {"done": "done", "skipped": "done (earlier run)", "failed": "**failed**"}[s["status"]]
        out.append(f"| {_md(s['scene_id'])} | {_md(s['pre_date'] or '')} | {_md(s['post_date'] or '')} | "
                   f"{status} | " + " | ".join(cells) + " |")
    failed = [s for s in d["scenes"] if s["status"] == "failed"]
    if failed:
        out += ["", "## Failed scenes", "", "| scene | pre | post | error |", "|---|---|---|---|"]
        for s in failed:
            out.append(f"| {_md(s['scene_id'])} | {_md(s['pre'] or '—')} | {_md(s['post'] or '—')} | "
                       f"{_md(s['error'])} |")
        out += ["", "Fix the inputs and run the same command again: complete scenes are skipped, "
                    "failed ones are retried."]
    out += ["", "## Scene details"]
    for s in d["scenes"]:
        if s["status"] == "failed":
            continue
        f = s["files"]
        dates = ""
        if s["pre_date"] or s["post_date"]:
            dates = f" ({_md(s['pre_date'] or '?')} → {_md(s['post_date'] or '?')})"
        out += ["", f"### {_md(s['scene_id'])}", "",
                f"![{_md(s['scene_id'])} quicklook]({quote(f['quicklook'])})", "",
                f"- pre: {_md(s['pre'])}", f"- post: {_md(s['post'])}{dates}",
                f"- {s['changes']} change polygons, {_area(s['changed_area_m2'])} m² changed; "
                f"files: [{_md(f['gpkg'])}]({quote(f['gpkg'])}), [{_md(f['raster'])}]({quote(f['raster'])})", ""]
        sentences = s["sentences"] or [s.get("description") or "There is no change in the image."]
        out += [f"> {_md(t)}" if len(sentences) == 1 else f"> - {_md(t)}" for t in sentences]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;
padding:.25em .6em;text-align:left;vertical-align:top}td.n,th.n{text-align:right}th{background:#f3f3f3}
.sw{display:inline-block;width:1em;height:1em;border:1px solid #333;vertical-align:middle;margin-right:.4em}
.failed{color:#b00020;font-weight:600}img{max-width:100%;border:1px solid #ccc}
blockquote{margin:.5em 0;padding:.3em 1em;border-left:4px solid #999;background:#fafafa}
section{margin-bottom:2em}code{font-size:90%}"""


def render_html(d: dict[str, Any], table: "ClassTable") -> str:
    e = html.escape
    classes = list(table.change_classes)
    rows = [("generated", f"{d['generated']} (s2m-geo {d['s2m_geo']})"), ("input", d["source"] or "—"),
            ("model", d["model"]), ("output folder", d["out_dir"]), ("scenes", _status_line(d)),
            ("merged layers", d["merged"] or "none (no complete scene)"),
            ("exit code", _exit_text(d["exit_code"])), ("time", f"{d['seconds']:.1f} s")]
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         "<title>s2m-geo batch report</title>", f"<style>{_CSS}</style></head><body>",
         "<h1>s2m-geo batch report</h1>", "<table>"]
    h += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows]
    h += ["</table>", "<h2>Totals by class</h2>",
          '<table><tr><th>class</th><th class="n">polygons</th><th class="n">area (m²)</th>'
          '<th class="n">scenes with it</th></tr>']
    for c in classes:
        t = d["totals"]["classes"][c.name]
        h.append(f'<tr><td><span class="sw" style="background:{e(c.color)}"></span>{e(t["label"])}</td>'
                 f'<td class="n">{t["count"]}</td><td class="n">{_area(t["area_m2"])}</td>'
                 f'<td class="n">{t["scenes"]}</td></tr>')
    h.append(f'<tr><th>all changes</th><th class="n">{d["totals"]["changes"]}</th>'
             f'<th class="n">{_area(d["totals"]["changed_area_m2"])}</th><th></th></tr></table>')
    h += ["<h2>Scenes</h2>", "<table><tr><th>scene</th><th>pre date</th><th>post date</th><th>status</th>"
          '<th class="n">polygons</th><th class="n">changed area (m²)</th>'
          + "".join(f'<th class="n"><span class="sw" style="background:{e(c.color)}"></span>{e(class_label(c))}</th>'
                    for c in classes) + "</tr>"]
    for s in d["scenes"]:
        if s["status"] == "failed":
            cells = ["—", "—"] + ["—"] * len(classes)
            status = '<span class="failed">failed</span>'
        else:
            cells = [str(s["changes"]), _area(s["changed_area_m2"])]
            for c in classes:
                v = s["classes"].get(c.name, {})
                cells.append(f"{v.get('count', 0)} · {_area(v.get('area_m2', 0.0))}" if v.get("count") else "–")
            status = "done" if s["status"] == "done" else "done (earlier run)"
            link = f'<a href="#scene-{e(quote(s["scene_id"]))}">{e(s["scene_id"])}</a>'
        name = e(s["scene_id"]) if s["status"] == "failed" else link
        h.append(f"<tr><td>{name}</td><td>{e(s['pre_date'] or '')}</td><td>{e(s['post_date'] or '')}</td>"
                 f"<td>{status}</td>" + "".join(f'<td class="n">{e(x)}</td>' for x in cells) + "</tr>")
    h.append("</table>")
    failed = [s for s in d["scenes"] if s["status"] == "failed"]
    if failed:
        h += ["<h2>Failed scenes</h2>", "<table><tr><th>scene</th><th>pre</th><th>post</th><th>error</th></tr>"]
        h += [f"<tr><td>{e(s['scene_id'])}</td><td><code>{e(s['pre'] or '—')}</code></td>"
              f"<td><code>{e(s['post'] or '—')}</code></td><td class=\"failed\">{e(s['error'] or '')}</td></tr>"
              for s in failed]
        h += ["</table>", "<p>Fix the inputs and run the same command again: complete scenes are skipped, "
                          "failed ones are retried.</p>"]
    h.append("<h2>Scene details</h2>")
    for s in d["scenes"]:
        if s["status"] == "failed":
            continue
        f = s["files"]
        sentences = s["sentences"] or [s.get("description") or "There is no change in the image."]
        dates = ""
        if s["pre_date"] or s["post_date"]:
            dates = f" ({e(s['pre_date'] or '?')} → {e(s['post_date'] or '?')})"
        h += [f'<section id="scene-{e(quote(s["scene_id"]))}"><h3>{e(s["scene_id"])}</h3>',
              f'<img src="{e(quote(f["quicklook"]))}" alt="{e(s["scene_id"])} quicklook">',
              f"<p>pre <code>{e(s['pre'])}</code><br>post <code>{e(s['post'])}</code>{dates}<br>"
              f"{s['changes']} change polygons, {_area(s['changed_area_m2'])} m² changed — "
              f'<a href="{e(quote(f["gpkg"]))}">{e(f["gpkg"])}</a>, '
              f'<a href="{e(quote(f["raster"]))}">{e(f["raster"])}</a></p>',
              "<blockquote>" + "<br>".join(e(t) for t in sentences) + "</blockquote></section>"]
    h.append("</body></html>")
    return "\n".join(h) + "\n"


def write_reports(result: "BatchResult", table: "ClassTable") -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into the batch's folder."""
    d = report_data(result, table)
    out = Path(result.out_dir)
    return [_write_text(out / "report.md", render_markdown(d, table)),
            _write_text(out / "report.html", render_html(d, table)),
            _write_text(out / "report.json", json.dumps(d, indent=2, ensure_ascii=False) + "\n")]


__all__ = ["render_quicklook", "write_merged", "write_reports", "report_data", "render_markdown",
           "render_html", "nice_length", "class_label"]
