"""``s2m-geo zones``: changes summarised per zone polygon (counts, ground areas, sentences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..progress import Progress
from .options import classes_option, load_table, output_option, progress_option


def _area(a: float | None) -> str:
    if a is None:
        return "–"
    return f"{a:,.0f}" if a >= 10 else f"{a:,.1f}"


def zone_table(rows: list[dict[str, Any]], table: Any) -> str:
    """A plain-text table of zone dicts (``ZoneSummary.to_dict``): one line per zone, the
    classes present in any zone as ``count/area`` columns."""
    present = [c for c in table.change_classes if any((r["classes"] or {}).get(c.name, {}).get("count") for r in rows)]
    head = ["zone", "status", "covered", "changes", "area m²"] + [c.label for c in present]
    body = []
    for r in rows:
        covered = r["classes"] is not None
        cells = [r["zone"], r["status"], f"{100 * r['covered_fraction']:.0f}%"]
        cells += [str(r["changes"]) if covered else "–", _area(r["changed_area_m2"])]
        for c in present:
            v = (r["classes"] or {}).get(c.name)
            cells.append("–" if v is None else (f"{v['count']} / {_area(v['area_m2'])}" if v["count"] else "0"))
        body.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = [
        "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
        for row in [head, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)


@click.command("zones")
@click.argument("changes", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("zones", required=False, type=click.Path(dir_okay=False, path_type=Path))
@output_option(
    "Output: .gpkg (layer 'zones'), .geojson, .fgb or .parquet.",
)
@click.option("--field", default=None, help="Field of ZONES that names each zone (default: its row number).")
@click.option(
    "--grid",
    default=None,
    metavar="ROWSxCOLS",
    help="Instead of ZONES: a grid of ROWSxCOLS boxes over the scenes' bounding box (e.g. 3x3; named A1, A2, …).",
)
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the zones as JSON instead of a table.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@progress_option
def zones(
    changes: Path,
    zones: Path | None,
    output: Path,
    field: str | None,
    grid: str | None,
    classes: str,
    as_json: bool,
    overwrite: bool,
    progress_mode: str,
) -> None:
    """Summarise the CHANGES of predict or batch per zone polygon of ZONES.

    For each zone: how much of it the imagery covers (zones no scene covers are 'not
    covered', their counts unknown), per class the change polygons that overlap it and the
    ground area inside it (polygons are cut exactly at zone borders; a polygon counts in every
    zone it overlaps, its area is split), and the zone's own S2M sentences (where within the
    zone, true north). ZONES may be in any CRS.

    \b
    Example:
      s2m-geo zones changes.gpkg districts.gpkg -o summary.gpkg --field name
      s2m-geo zones results/all_changes.gpkg --grid 3x3 -o grid.gpkg --json
    """
    import json

    from ..outputs import check_outputs
    from ..vector.output import vector_driver
    from ..zones.io import grid_input, read_changes, read_zones, summarize, write_zones, zones_frame

    if (zones is None) == (grid is None):
        raise InputError(
            f"{zones or changes}: give either a ZONES file or {{grid}} ROWSxCOLS (one of them)", params=("grid",)
        )
    if grid is not None and field is not None:
        raise InputError(
            f"{{field}} {field}: {{grid}} zones are named A1, A2, …; drop {{field}}", params=("field", "grid")
        )
    vector_driver(output)
    check_outputs({"output": output}, {"changes": changes, "zones": zones}, overwrite)
    table = load_table(classes)
    with Progress(progress_mode) as progress:
        step = progress.callback("zones")  # read changes, read zones, summarise, write
        step(0, 4)
        data = read_changes(changes, table)
        step(1, 4)
        zone_input = read_zones(zones, field) if zones is not None else grid_input(data, str(grid))
        step(2, 4)
        progress.message(f"{len(data.changes)} change polygons, {len(zone_input.names)} zones")
        summaries = summarize(data, zone_input, table)
        step(3, 4)
        write_zones(output, zones_frame(summaries, zone_input, table))
        step(4, 4)
    rows = [s.to_dict(table) for s in summaries]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    counts = {k: sum(r["status"] == k for r in rows) for k in ("covered", "partly covered", "not covered")}
    click.echo(
        f"{output}: {len(rows)} zones ({counts['covered']} covered, {counts['partly covered']} partly covered, "
        f"{counts['not covered']} not covered)"
    )
    click.echo(zone_table(rows, table))
