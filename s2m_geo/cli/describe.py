"""``s2m-geo describe``: what a class raster shows, as S2M quadruples and sentences."""

from __future__ import annotations

from pathlib import Path

import click

from ..describe.templates import NO_CHANGE_SENTENCE
from ..errors import InputError
from .options import classes_option, load_table


@click.command()
@click.argument("mask", type=click.Path(path_type=Path))
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
@click.option(
    "--seed",
    default=None,
    type=int,
    help="Draw each sentence's template at random with this seed (default: template 0).",
)
def describe(mask: Path, classes: str, as_json: bool, seed: int | None) -> None:
    """Say what a class raster shows: per class, where / what / how / how many, and a sentence.

    For a georeferenced raster, directions are compass terms in a true-north frame centred on
    the raster (rotated, south-up and geographic rasters handled), with the bearing and
    distance from the centre, and quantities come from true ground areas. A raster with no
    CRS falls back to image terms (top = north, pixel counts) and says so.

    \b
    Example:
      s2m-geo describe sample_data/label.tif
      s2m-geo describe sample_data/label.tif --json
    """
    import json
    import random

    from ..describe.geo import describe_counts_geo
    from ..evaluate import class_counts

    table = load_table(classes)
    per_row, per_col, profile = class_counts(mask, table)  # in strips: any raster size
    crs = profile.get("crs")
    try:
        items, image_terms = describe_counts_geo(
            per_row,
            per_col,
            profile["transform"] if crs else None,
            crs or None,
            table,
            random.Random(seed) if seed is not None else None,
        )
    except InputError as exc:
        raise InputError(f"{mask}: {exc}") from None
    terms = "image terms (no CRS: top = north, pixel counts)" if image_terms else "true-north compass terms"
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "class_id": q.class_id,
                        "category": q.category,
                        "change_type": q.change_type,
                        "quantity": q.quantity,
                        "direction": q.direction,
                        "pixels": q.pixels,
                        "sentence": s,
                        "terms": "image" if image_terms else "compass",
                        **extra,
                    }
                    for q, s, extra in items
                ],
                indent=2,
            )
        )
        return
    if not items:
        click.echo(f"{mask}: no change. {NO_CHANGE_SENTENCE}")
        return
    click.echo(f"{mask}: {len(items)} change class(es); directions in {terms}")
    for q, s, extra in items:
        where = q.direction
        if extra.get("area_m2") is not None:
            where += f" (bearing {extra['bearing_deg']:.0f}°, {extra['distance_m']:.0f} m), {extra['area_m2']:.0f} m²"
        click.echo(f"  {q.class_id} {table[q.class_id].name}: {q.quantity}, {where}, {q.pixels} px  --  {s}")
