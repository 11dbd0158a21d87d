"""``s2m-geo evaluate``: semantic change detection scores of predictions against labels."""

from __future__ import annotations

from pathlib import Path

import click

from ..progress import Progress
from .options import classes_option, load_table, progress_option


@click.command()
@click.argument("pred", type=click.Path(path_type=Path))
@click.argument("label", type=click.Path(path_type=Path))
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@progress_option
def evaluate(pred: Path, label: Path, classes: str, as_json: bool, progress_mode: str) -> None:
    """Score predicted class rasters against labels: SeK, Fscd, mIoU, OA, per-class IoU/F1.

    PRED and LABEL are two rasters on one grid, or two folders of them paired by file name.
    One confusion matrix is accumulated over all pixels (rows = prediction); nodata and
    label 255 are ignored.

    \b
    Example:
      s2m-geo evaluate changes.tif sample_data/label.tif --json
    """
    import json

    from ..evaluate import evaluate_rasters

    table = load_table(classes)
    with Progress(progress_mode) as progress:
        scores = evaluate_rasters(pred, label, table, progress.callback("evaluate"))
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    click.echo(f"{scores['pairs']} pair(s), {sum(map(sum, scores['confusion_matrix']))} pixels scored")
    for key in ("sek", "fscd", "precision", "recall", "miou", "oa", "mf1", "kappa"):
        click.echo(f"  {key:<10} {scores[key]:.4f}")
    click.echo("  per class:       IoU     F1")
    for row in scores["per_class"]:
        click.echo(f"  {row['class_id']:>2} {table[row['class_id']].name:<28} {row['iou']:.4f} {row['f1']:.4f}")
