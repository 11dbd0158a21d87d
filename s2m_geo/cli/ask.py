"""``s2m-geo ask``: a question about a ``changes`` layer, answered with a number and a sentence."""

from __future__ import annotations

from pathlib import Path

import click

from .options import classes_option, load_table, output_option


@click.command()
@click.argument("changes", type=click.Path(path_type=Path))
@click.argument("question")
@output_option(
    "Also write the matching polygons (the same fields) here: .gpkg, .geojson, .fgb or .parquet.",
    required=False,
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def ask(changes: Path, question: str, output: Path | None, overwrite: bool, classes: str, as_json: bool) -> None:
    """Ask CHANGES (the polygons `predict` or `batch` wrote) a QUESTION in the class table's words.

    Understands the table's categories, change types, their plurals and synonyms; the eight
    compass words and centre (the `direction` field: S2M's 3×3 rule, true north); the
    quantity words; how many / how much area / where / which; largest / smallest; limits such
    as "more than 500 m²", "less than 0.5 ha", "within 2 km of the centre". A word it does not
    know is an error that lists the words it knows: it never guesses.

    \b
    Example:
      s2m-geo ask changes.gpkg "how many destroyed buildings are in the north-east?"
      s2m-geo ask changes.gpkg "how much area of new greenhouses is within 300 m of the centre?"
      s2m-geo ask changes.gpkg "the 5 largest razed houses" -o largest.gpkg --json
    """
    import json

    from ..ask.answer import answer
    from ..ask.layer import check_layer, read_changes, rows_of
    from ..ask.parse import parse_question
    from ..vector.output import CHANGE_COLUMNS, vector_driver

    if output is not None:
        from ..outputs import check_outputs

        vector_driver(output)
        check_outputs({"output": output}, {"changes": changes}, overwrite)
    table = load_table(classes)
    query = parse_question(question, table)
    frame = read_changes(changes)
    unit = check_layer(changes, frame, query, table)
    result = answer(query, rows_of(frame, with_fid=vector_driver(changes) == "GPKG"), table, area_unit=unit)
    if output is not None:
        from ..vector.output import write_changes

        columns = [c for c in CHANGE_COLUMNS if c in frame.columns] + [frame.geometry.name]
        write_changes(output, frame.iloc[list(result.rows)][columns].reset_index(drop=True), table)
    if as_json:
        picked = rows_of(frame.iloc[list(result.rows)], with_fid=vector_driver(changes) == "GPKG")
        for position, row in zip(result.rows, picked):
            row["row"] = position  # 0-based position in the layer (the feature id, for other formats)
        click.echo(
            json.dumps(
                {
                    "question": question,
                    "intent": query.intent,
                    "classes": [table[c].name for c in query.class_ids],
                    "quantities": list(query.quantities),
                    "directions": list(query.directions),
                    "conditions": [{"field": c.field, "op": c.op, "value": c.value} for c in query.conditions],
                    "rank": query.rank,
                    "count": result.count,
                    "area": result.area_m2,
                    "area_unit": unit,
                    "by_direction": [{"direction": d, "count": n, "area": a} for d, n, a in result.by_direction],
                    "answer": result.sentence,
                    "matches": picked,
                    "output": None if output is None else str(output),
                },
                indent=2,
                default=_json_value,
            )
        )
        return
    click.echo(result.sentence)
    for line in result.lines:
        click.echo(f"  {line}")
    if output is not None:
        click.echo(f"{output}: {result.count} polygon(s) written")


def _json_value(x: object) -> object:
    """numpy scalars and missing values as plain JSON."""
    import math

    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x if isinstance(x, (int, float, str, bool)) or x is None else str(x)
