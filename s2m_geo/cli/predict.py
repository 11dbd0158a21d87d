"""``s2m-geo predict``: described change polygons (or a change raster) from two scenes."""

from __future__ import annotations

from pathlib import Path

import click

from ..progress import Progress
from .options import model_option, output_option, prediction_options, progress_option, vector_options


@click.command()
@click.argument("pre", type=click.Path(path_type=Path))
@click.argument("post", type=click.Path(path_type=Path))
@output_option(
    "Output: .gpkg (change polygons + scene summary, QGIS styles), .geojson, .fgb, "
    ".parquet, or .tif for the change raster alone.",
)
@click.option(
    "--raster",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also keep the change raster (Cloud Optimized GeoTIFF) here.",
)
@vector_options
@click.option("--scene-id", default=None, help="Scene id in the outputs (default: pre's file name).")
@model_option
@click.option(
    "--probabilities",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write per-class probabilities (float32, one band per class).",
)
@prediction_options
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@progress_option
def predict(
    pre: Path,
    post: Path,
    output: Path,
    raster: Path | None,
    min_area: float,
    simplify: float,
    scene_id: str | None,
    model: Path | None,
    probabilities: Path | None,
    options,
    overwrite: bool,
    progress_mode: str,
) -> None:
    """Detect change between PRE and POST; write described change polygons (or a raster).

    Both scenes are put on one grid (pre's by default), cut into overlapping tiles, run
    through the model in batches and blended back seamlessly; pixels outside either scene's
    valid area are nodata. Each connected change region becomes a polygon with what / how /
    where (true-north compass terms) / how many, its ground area and a sentence.

    \b
    Example:
      s2m-geo predict sample_data/pre.tif sample_data/post.tif -o changes.gpkg --model runs/small/model.safetensors
      s2m-geo predict pre.tif post.tif -o changes.gpkg --raster changes.tif --min-area 20
    """
    from ..predict.pipeline import input_warnings
    from ..predict.pipeline import predict as run_predict

    raster_only = output.suffix.lower() in (".tif", ".tiff")
    if not raster_only:
        from ..vector.output import vector_driver

        vector_driver(output)
    if model is None:
        from ..predict.runners import default_model_path

        model = default_model_path()
    if raster_only:
        from ..errors import InputError
        from ..outputs import check_outputs

        if raster is not None:
            raise InputError(
                f"{raster}: {{raster}} keeps the change raster beside a vector {{output}}, but {output} is "
                f"the change raster itself; drop {{raster}} or give a .gpkg output",
                params=("raster", "output"),
            )
        from ..predict.style import style_path

        check_outputs(
            [("output", output), ("output", style_path(output)), ("probabilities", probabilities)],
            {"pre": pre, "post": post, "model": model},
            overwrite,
        )
    opts = options
    with Progress(progress_mode) as progress:
        for text in input_warnings(pre, post):
            progress.warning(text)
        if raster_only:
            result = run_predict(
                pre,
                post,
                output,
                model,
                opts,
                probabilities=probabilities,
                overwrite=overwrite,
                progress=progress.update,
            )
        else:
            from ..detect import detect_changes

            detected = detect_changes(
                pre,
                post,
                output,
                model,
                opts,
                raster=raster,
                probabilities=probabilities,
                min_area_m2=min_area,
                simplify_m=simplify,
                scene_id=scene_id,
                overwrite=overwrite,
                progress=progress.update,
            )
            result = detected.prediction
    changed = sum(n for cid, n in result.class_counts.items() if cid > 0)
    where = result.raster if raster_only else ", ".join(map(str, detected.vectors))
    click.echo(
        f"{where}: {result.grid.width}x{result.grid.height} px, {result.tiles} tiles "
        f"({result.tiles_skipped} skipped as nodata), {changed} changed px"
        + ("" if raster_only else f", {detected.changes} change polygons")
    )
    if not raster_only:
        for sentence in detected.scene_sentences:
            click.echo(f"  {sentence}")
