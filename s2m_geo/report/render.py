"""A batch's reports: ``report.md``, ``report.html`` and ``report.json`` — per-scene and total
counts and areas by class, each scene's sentences (from its ``scenes`` layer) and its changes
per 3×3 cell and compass sector, the zone table of ``batch --zones``, the failed scenes with
their errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import atomic
from ..batch.layout import scene_files
from ..describe.templates import NO_CHANGE_SENTENCE
from ..escaping import html_text, md_text
from ..zones.sectors import CELLS, COMPASS

if TYPE_CHECKING:  # pragma: no cover
    from ..batch.results import BatchResult, SceneOutcome
    from ..classes import ClassTable


def _summary(outcome: SceneOutcome) -> dict[str, Any]:
    return ((outcome.marker or {}).get("summary")) or {}


def report_data(result: BatchResult, table: ClassTable) -> dict[str, Any]:
    """Everything the reports show, as plain data (also written as report.json)."""
    from .. import __version__

    scenes = []
    totals: dict[str, dict[str, Any]] = {
        c.name: {"label": c.label, "color": c.color, "count": 0, "area_m2": 0.0, "scenes": 0}
        for c in table.change_classes
    }
    for o in result.outcomes:
        s = _summary(o)
        files = {k: p.name for k, p in scene_files(result.out_dir, o.scene_id).items() if k != "marker"}
        row: dict[str, Any] = {
            "scene_id": o.scene_id,
            "status": o.status,
            "error": o.error,
            "pre": o.job.pre,
            "post": o.job.post,
            "pre_date": o.job.pre_date,
            "post_date": o.job.post_date,
            "seconds": round(o.seconds, 3),
            "worker": o.worker,
        }
        if o.complete:
            row.update(
                changes=s.get("changes", 0),
                changed_area_m2=s.get("changed_area_m2", 0.0),
                classes=s.get("classes", {}),
                sentences=s.get("sentences", []),
                description=s.get("description", ""),
                files=files,
                size_px=[s.get("width"), s.get("height")],
                sectors=s.get("sectors"),
            )
            for name, v in (s.get("classes") or {}).items():
                if name in totals:
                    totals[name]["count"] += int(v.get("count", 0))
                    totals[name]["area_m2"] += float(v.get("area_m2", 0.0))
                    totals[name]["scenes"] += 1 if v.get("count", 0) else 0
        scenes.append(row)
    n = len(result.outcomes)
    counts = {k: sum(o.status == k for o in result.outcomes) for k in ("done", "skipped", "failed")}
    return {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "s2m_geo": __version__,
        "source": result.source,
        "model": result.model,
        "out_dir": str(result.out_dir),
        "merged": result.merged.name if result.merged else None,
        "merge_error": result.merge_error,
        "seconds": round(result.seconds, 3),
        "scenes_total": n,
        "complete": counts["done"] + counts["skipped"],
        **counts,
        "exit_code": result.exit_code,
        "totals": {
            "classes": totals,
            "changes": sum(v["count"] for v in totals.values()),
            "changed_area_m2": sum(v["area_m2"] for v in totals.values()),
        },
        "scenes": scenes,
        "zones": result.zones,
    }


#: The report's headings of the scene sectors (docs/design.md §3.9).
SECTOR_TABLES = (
    ("cells", "Where: the 3×3 cells (true north)", tuple(CELLS)),
    ("compass", "Where: compass sectors around the scene centre (true bearings)", tuple(COMPASS)),
)


def _cell(v: list[float] | None) -> str:
    return f"{int(v[0])} · {_area(float(v[1]))}" if v and v[0] else "–"


def sector_rows(sectors: dict[str, Any], key: str, names: tuple[str, ...], table: ClassTable) -> list[list[str]]:
    """One row per class present in any sector (label, then ``count · area`` per sector),
    then the row of all classes."""
    detail = sectors.get(key) or {}
    rows = []
    for c in table.change_classes:
        cells = [detail.get(n, {}).get(c.name) for n in names]
        if any(cells):
            rows.append([c.label] + [_cell(v) for v in cells])
    if rows:
        totals = []
        for n in names:
            vals = list((detail.get(n) or {}).values())
            totals.append(_cell([sum(v[0] for v in vals), sum(v[1] for v in vals)]) if vals else "–")
        rows.append(["all changes"] + totals)
    return rows


def _zone_cells(z: dict[str, Any], table: ClassTable) -> list[str]:
    """status, covered, polygons, area, then ``count · area`` per class, for a zone row."""
    covered = z["classes"] is not None
    cells = [z["status"], f"{100 * z['covered_fraction']:.0f} %"]
    cells += [str(z["changes"]), _area(z["changed_area_m2"])] if covered else ["–", "–"]
    for c in table.change_classes:
        v = (z["classes"] or {}).get(c.name)
        cells.append("–" if v is None else (f"{v['count']} · {_area(v['area_m2'])}" if v["count"] else "0"))
    return cells


#: Every text of the Markdown report goes through this (scene ids, paths, class labels, zone
#: names, errors, sentences come from manifests, class tables and model headers).
_md = md_text


def _area(a: float) -> str:
    return f"{a:,.0f}" if a >= 10 else f"{a:,.1f}"


def _status_line(d: dict) -> str:
    parts = [f"{d['complete']} complete ({d['done']} processed in this run, {d['skipped']} already complete)"]
    if d["failed"]:
        parts.append(f"{d['failed']} failed")
    return f"{d['scenes_total']}: " + ", ".join(parts)


def _exit_text(code: int) -> str:
    return "0 — every scene complete" if code == 0 else f"{code} — some scenes failed (see below)"


def render_markdown(d: dict[str, Any], table: ClassTable) -> str:
    classes = list(table.change_classes)
    out = [
        "# s2m-geo batch report",
        "",
        "| | |",
        "|---|---|",
        f"| generated | {d['generated']} (s2m-geo {d['s2m_geo']}) |",
        f"| input | {_md(d['source'] or '—')} |",
        f"| model | {_md(d['model'])} |",
        f"| output folder | {_md(d['out_dir'])} |",
        f"| scenes | {_status_line(d)} |",
        f"| merged layers | {_md(d['merged'] or d.get('merge_error') or 'none (no complete scene)')} |",
        f"| exit code | {_exit_text(d['exit_code'])} |",
        f"| time | {d['seconds']:.1f} s |",
        "",
        "## Totals by class",
        "",
        "| class | colour | polygons | area (m²) | scenes with it |",
        "|---|---|---:|---:|---:|",
    ]
    for c in classes:
        t = d["totals"]["classes"][c.name]
        out.append(
            f"| {_md(t['label'])} | `{c.color}` | {_md(t['count'])} | {_area(t['area_m2'])} | {_md(t['scenes'])} |"
        )
    out += [
        f"| **all changes** | | **{d['totals']['changes']}** | **{_area(d['totals']['changed_area_m2'])}** | |",
        "",
        "## Scenes",
        "",
        "| scene | pre date | post date | status | polygons | changed area (m²) | "
        + " | ".join(_md(c.label) for c in classes)
        + " |",
        "|---|---|---|---|---:|---:|" + "---:|" * len(classes),
    ]
    for s in d["scenes"]:
        if s["status"] == "failed":
            cells = ["—", "—"] + ["—"] * len(classes)
        else:
            cells = [str(s["changes"]), _area(s["changed_area_m2"])]
            for c in classes:
                v = s["classes"].get(c.name, {})
                cells.append(f"{v.get('count', 0)} · {_area(v.get('area_m2', 0.0))}" if v.get("count") else "–")
        status = {"done": "done", "skipped": "done (earlier run)", "failed": "**failed**"}[s["status"]]
        out.append(
            f"| {_md(s['scene_id'])} | {_md(s['pre_date'] or '')} | {_md(s['post_date'] or '')} | "
            f"{status} | " + " | ".join(_md(x) for x in cells) + " |"
        )
    if d.get("zones") is not None:
        out += [
            "",
            "## Zones",
            "",
            "Change polygons are cut at zone borders: a polygon counts in every zone it overlaps, its "
            "area is split. A zone no scene covers is *not covered*: its changes are unknown.",
            "",
            "| zone | status | covered | polygons | changed area (m²) | "
            + " | ".join(_md(c.label) for c in classes)
            + " |",
            "|---|---|---:|---:|---:|" + "---:|" * len(classes),
        ]
        for z in d["zones"]:
            out.append(f"| {_md(z['zone'])} | " + " | ".join(_md(x) for x in _zone_cells(z, table)) + " |")
        out.append("")
        out += [f"- **{_md(z['zone'])}**: {_md(z['description'])}" for z in d["zones"]]
    failed = [s for s in d["scenes"] if s["status"] == "failed"]
    if failed:
        out += ["", "## Failed scenes", "", "| scene | pre | post | error |", "|---|---|---|---|"]
        for s in failed:
            out.append(
                f"| {_md(s['scene_id'])} | {_md(s['pre'] or '—')} | {_md(s['post'] or '—')} | {_md(s['error'])} |"
            )
        out += [
            "",
            "Fix the inputs and run the same command again: complete scenes are skipped, failed ones are retried.",
        ]
    out += ["", "## Scene details"]
    for s in d["scenes"]:
        if s["status"] == "failed":
            continue
        f = s["files"]
        dates = ""
        if s["pre_date"] or s["post_date"]:
            dates = f" ({_md(s['pre_date'] or '?')} → {_md(s['post_date'] or '?')})"
        out += [
            "",
            f"### {_md(s['scene_id'])}",
            "",
            f"![{_md(s['scene_id'])} quicklook]({quote(f['quicklook'])})",
            "",
            f"- pre: {_md(s['pre'])}",
            f"- post: {_md(s['post'])}{dates}",
            f"- {_md(s['changes'])} change polygons, {_area(s['changed_area_m2'])} m² changed; "
            f"files: [{_md(f['gpkg'])}]({quote(f['gpkg'])}), [{_md(f['raster'])}]({quote(f['raster'])})",
            "",
        ]
        sentences = s["sentences"] or [s.get("description") or NO_CHANGE_SENTENCE]
        out += [f"> {_md(t)}" if len(sentences) == 1 else f"> - {_md(t)}" for t in sentences]
        for key, title, names in SECTOR_TABLES if s.get("sectors") else ():
            rows = sector_rows(s["sectors"], key, names, table)
            if not rows:
                continue
            out += ["", f"#### {title}", "", "| class | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            out += ["| " + " | ".join(_md(x) for x in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;
padding:.25em .6em;text-align:left;vertical-align:top}td.n,th.n{text-align:right}th{background:#f3f3f3}
.sw{display:inline-block;width:1em;height:1em;border:1px solid #333;vertical-align:middle;margin-right:.4em}
.failed{color:#b00020;font-weight:600}img{max-width:100%;border:1px solid #ccc}
blockquote{margin:.5em 0;padding:.3em 1em;border-left:4px solid #999;background:#fafafa}
section{margin-bottom:2em}code{font-size:90%}"""


def render_html(d: dict[str, Any], table: ClassTable) -> str:
    e = html_text  # every text of the HTML report, in elements and in attributes
    classes = list(table.change_classes)
    rows = [
        ("generated", f"{d['generated']} (s2m-geo {d['s2m_geo']})"),
        ("input", d["source"] or "—"),
        ("model", d["model"]),
        ("output folder", d["out_dir"]),
        ("scenes", _status_line(d)),
        ("merged layers", d["merged"] or d.get("merge_error") or "none (no complete scene)"),
        ("exit code", _exit_text(d["exit_code"])),
        ("time", f"{d['seconds']:.1f} s"),
    ]
    h = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>s2m-geo batch report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>s2m-geo batch report</h1>",
        "<table>",
    ]
    h += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows]
    h += [
        "</table>",
        "<h2>Totals by class</h2>",
        '<table><tr><th>class</th><th class="n">polygons</th><th class="n">area (m²)</th>'
        '<th class="n">scenes with it</th></tr>',
    ]
    for c in classes:
        t = d["totals"]["classes"][c.name]
        h.append(
            f'<tr><td><span class="sw" style="background:{e(c.color)}"></span>{e(t["label"])}</td>'
            f'<td class="n">{e(t["count"])}</td><td class="n">{_area(t["area_m2"])}</td>'
            f'<td class="n">{e(t["scenes"])}</td></tr>'
        )
    h.append(
        f'<tr><th>all changes</th><th class="n">{e(d["totals"]["changes"])}</th>'
        f'<th class="n">{_area(d["totals"]["changed_area_m2"])}</th><th></th></tr></table>'
    )
    h += [
        "<h2>Scenes</h2>",
        "<table><tr><th>scene</th><th>pre date</th><th>post date</th><th>status</th>"
        '<th class="n">polygons</th><th class="n">changed area (m²)</th>'
        + "".join(
            f'<th class="n"><span class="sw" style="background:{e(c.color)}"></span>{e(c.label)}</th>' for c in classes
        )
        + "</tr>",
    ]
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
        h.append(
            f"<tr><td>{name}</td><td>{e(s['pre_date'] or '')}</td><td>{e(s['post_date'] or '')}</td>"
            f"<td>{status}</td>" + "".join(f'<td class="n">{e(x)}</td>' for x in cells) + "</tr>"
        )
    h.append("</table>")
    if d.get("zones") is not None:
        h += [
            "<h2>Zones</h2>",
            "<p>Change polygons are cut at zone borders: a polygon counts in every zone it overlaps, its area "
            "is split. A zone no scene covers is <em>not covered</em>: its changes are unknown.</p>",
            '<table><tr><th>zone</th><th>status</th><th class="n">covered</th><th class="n">polygons</th>'
            '<th class="n">changed area (m²)</th>'
            + "".join(f'<th class="n">{e(c.label)}</th>' for c in classes)
            + "<th>sentences</th></tr>",
        ]
        for z in d["zones"]:
            cells = _zone_cells(z, table)
            h.append(
                f"<tr><td>{e(z['zone'])}</td><td>{e(cells[0])}</td>"
                + "".join(f'<td class="n">{e(x)}</td>' for x in cells[1:])
                + f"<td>{e(z['description'])}</td></tr>"
            )
        h.append("</table>")
    failed = [s for s in d["scenes"] if s["status"] == "failed"]
    if failed:
        h += ["<h2>Failed scenes</h2>", "<table><tr><th>scene</th><th>pre</th><th>post</th><th>error</th></tr>"]
        h += [
            f"<tr><td>{e(s['scene_id'])}</td><td><code>{e(s['pre'] or '—')}</code></td>"
            f'<td><code>{e(s["post"] or "—")}</code></td><td class="failed">{e(s["error"] or "")}</td></tr>'
            for s in failed
        ]
        h += [
            "</table>",
            "<p>Fix the inputs and run the same command again: complete scenes are skipped, "
            "failed ones are retried.</p>",
        ]
    h.append("<h2>Scene details</h2>")
    for s in d["scenes"]:
        if s["status"] == "failed":
            continue
        f = s["files"]
        sentences = s["sentences"] or [s.get("description") or NO_CHANGE_SENTENCE]
        dates = ""
        if s["pre_date"] or s["post_date"]:
            dates = f" ({e(s['pre_date'] or '?')} → {e(s['post_date'] or '?')})"
        h += [
            f'<section id="scene-{e(quote(s["scene_id"]))}"><h3>{e(s["scene_id"])}</h3>',
            f'<img src="{e(quote(f["quicklook"]))}" alt="{e(s["scene_id"])} quicklook">',
            f"<p>pre <code>{e(s['pre'])}</code><br>post <code>{e(s['post'])}</code>{dates}<br>"
            f"{e(s['changes'])} change polygons, {_area(s['changed_area_m2'])} m² changed — "
            f'<a href="{e(quote(f["gpkg"]))}">{e(f["gpkg"])}</a>, '
            f'<a href="{e(quote(f["raster"]))}">{e(f["raster"])}</a></p>',
            "<blockquote>" + "<br>".join(e(t) for t in sentences) + "</blockquote>",
        ]
        for key, title, names in SECTOR_TABLES if s.get("sectors") else ():
            srows = sector_rows(s["sectors"], key, names, table)
            if srows:
                h.append(
                    f"<h4>{e(title)}</h4><table><tr><th>class</th>"
                    + "".join(f'<th class="n">{e(n)}</th>' for n in names)
                    + "</tr>"
                    + "".join(
                        f"<tr><td>{e(r[0])}</td>" + "".join(f'<td class="n">{e(x)}</td>' for x in r[1:]) + "</tr>"
                        for r in srows
                    )
                    + "</table>"
                )
        h.append("</section>")
    h.append("</body></html>")
    return "\n".join(h) + "\n"


def write_reports(result: BatchResult, table: ClassTable) -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into the batch's folder."""
    d = report_data(result, table)
    out = Path(result.out_dir)
    return [
        atomic.write_text(out / "report.md", render_markdown(d, table)),
        atomic.write_text(out / "report.html", render_html(d, table)),
        atomic.write_text(out / "report.json", json.dumps(d, indent=2, ensure_ascii=False) + "\n"),
    ]
