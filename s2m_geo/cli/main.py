"""The ``s2m-geo`` command line: a thin layer over the Python API.

Exit codes (docs/design.md §3.7): 0 done; 2 bad usage or bad input; 1 unexpected failure;
130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import InputError, S2MError
from ..progress import MODES, Progress
from .batch import batch as batch_command
from .options import prediction_options

progress_option = click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(MODES),
    default="auto",
    show_default=True,
    help="Progress display: a bar on a terminal, or one JSON object per line on stderr.",
)


class _Group(click.Group):
    """Turns expected errors into one-line messages and exit codes."""

    def main(self, *args, **kwargs):  # noqa: D102
        kwargs.setdefault("standalone_mode", True)
        try:
            return super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.Abort:
            click.echo("s2m-geo: interrupted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("s2m-geo: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
        except S2MError as exc:
            click.echo(f"s2m-geo: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # disk full, permissions, read-only or vanished folders
            where = exc.filename or "a file"
            click.echo(
                f"s2m-geo: error: {where}: {exc.strerror or exc}; check the path, permissions and free disk space",
                err=True,
            )
            sys.exit(2)
        except Exception as exc:
            if not isinstance(exc, _gis_errors()):
                raise
            msg = " ".join(str(exc.__cause__ or exc).split())[:300]
            click.echo(
                f"s2m-geo: error: GDAL could not read or write a file ({msg}); check the "
                f"paths, permissions and free disk space",
                err=True,
            )
            sys.exit(2)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)


def _gis_errors() -> tuple:
    """GDAL/OGR failures (disk full, corrupt files) as surfaced by rasterio and pyogrio."""
    from pyogrio.errors import DataLayerError, DataSourceError
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    return (RasterioError, CPLE_BaseError, DataSourceError, DataLayerError)


def _sigterm_to_interrupt(signum, frame):  # SIGTERM takes the same clean-up path as Ctrl-C
    raise KeyboardInterrupt


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s2m-geo")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Find and describe change between two georeferenced scenes (S2M, "Masks Can Talk")."""
    import logging

    import rasterio

    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    # GDAL's messages go through rasterio's handler into logging, not raw onto stderr; the
    # command reports failures itself, as one line
    ctx.with_resource(rasterio.Env())
    logging.getLogger("rasterio").setLevel(logging.CRITICAL)


@cli.command("sample-data")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--size",
    default=1536,
    show_default=True,
    type=click.IntRange(64, 200_000),
    help="Scene side in pixels (square scene).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed: same seed, same scene.")
@click.option(
    "--gsd",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Ground sample distance of pre (and label), metres.",
)
@click.option("--post-crs", default=None, help="Write post on another CRS, e.g. EPSG:4326.")
@click.option(
    "--post-gsd",
    default=None,
    type=click.FloatRange(min=0.01),
    help="Write post at another ground sample distance, metres.",
)
@click.option(
    "--nodata-border",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Add a nodata collar of this many pixels to post.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing pre.tif/post.tif/label.tif.")
@progress_option
def sample_data(
    outdir: Path,
    size: int,
    seed: int,
    gsd: float,
    post_crs: str | None,
    post_gsd: float | None,
    nodata_border: int,
    overwrite: bool,
    progress_mode: str,
) -> None:
    """Write a synthetic Gaza-like scene pair into OUTDIR: pre.tif, post.tif, label.tif.

    \b
    Example:
      s2m-geo sample-data demo --size 2048 --seed 3 --post-crs EPSG:4326
    """
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    from ..synthetic import SceneSpec, write_scene

    if post_crs is not None:
        try:
            CRS.from_user_input(post_crs)
        except CRSError:
            raise InputError(f"--post-crs {post_crs}: not a CRS GDAL knows; give e.g. EPSG:4326") from None
    if not overwrite:
        existing = [str(outdir / f) for f in ("pre.tif", "post.tif", "label.tif") if (outdir / f).exists()]
        if existing:
            raise InputError(f"{existing[0]}: already exists; pass --overwrite or choose another folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the folder ({exc.strerror}); choose a writable place") from None
    spec = SceneSpec(size=size, seed=seed, gsd=gsd, post_crs=post_crs, post_gsd=post_gsd, nodata_border=nodata_border)
    with Progress(progress_mode) as progress:
        paths = write_scene(outdir, spec, progress=progress.callback("synthesize"))
    for p in paths.values():
        click.echo(str(p))


@cli.command()
@click.argument("pre", type=click.Path(path_type=Path))
@click.argument("post", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output: .gpkg (change polygons + scene summary, QGIS styles), .geojson, .fgb, "
    ".parquet, or .tif for the change raster alone.",
)
@click.option(
    "--raster",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also keep the change raster (Cloud Optimized GeoTIFF) here.",
)
@click.option(
    "--min-area",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Drop change polygons smaller than this ground area, m².",
)
@click.option(
    "--simplify",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Simplify polygon outlines with this tolerance, metres (topology kept).",
)
@click.option("--scene-id", default=None, help="Scene id in the outputs (default: pre's file name).")
@click.option(
    "--model",
    "model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Model package (.safetensors) or two-input ONNX model (default: the shipped model).",
)
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


classes_option = click.option(
    "--classes",
    "classes",
    default="gaza_change",
    show_default=True,
    help="Class table: a packaged name or a YAML file.",
)


def _table(classes: str):
    from ..classes import load_class_table

    return load_class_table(classes)


@cli.command()
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

    from ..describe.geo import describe_mask_geo
    from ..evaluate import read_mask

    table = _table(classes)
    data, profile = read_mask(mask)
    crs = profile.get("crs")
    try:
        items, image_terms = describe_mask_geo(
            data,
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
        click.echo(f"{mask}: no change. There is no change in the image.")
        return
    click.echo(f"{mask}: {len(items)} change class(es); directions in {terms}")
    for q, s, extra in items:
        where = q.direction
        if extra.get("area_m2") is not None:
            where += f" (bearing {extra['bearing_deg']:.0f}°, {extra['distance_m']:.0f} m), {extra['area_m2']:.0f} m²"
        click.echo(f"  {q.class_id} {table[q.class_id].name}: {q.quantity}, {where}, {q.pixels} px  --  {s}")


@cli.command()
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

    table = _table(classes)
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


@cli.command()
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(path_type=Path),
    help="Training config YAML (see configs/s2m_small_cpu.yaml).",
)
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (checkpoints, log, model.safetensors). Default: runs/CONFIG-NAME.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@progress_option
def train(config: Path, out: Path | None, resume: bool, progress_mode: str) -> None:
    """Train an S2M model in two stages (visual, then text-guided) and write a model package.

    \b
    Example:
      s2m-geo train --config configs/s2m_small_cpu.yaml --out runs/small
      s2m-geo train --config configs/s2m_small_cpu.yaml --out runs/small --resume
    """
    from ..train.config import load_train_config
    from ..train.trainer import train as run_training

    cfg = load_train_config(config)
    out = out or Path("runs") / config.stem
    with Progress(progress_mode) as progress:
        final = run_training(cfg, out, resume=resume, progress=progress.update, message=progress.message)
    click.echo(str(final))


@cli.command("model-info")
@click.argument("model", type=click.Path(path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the package metadata as JSON.")
def model_info(model: Path, as_json: bool) -> None:
    """Show what a model package (.safetensors) or ONNX change model is and how it was trained.

    Without MODEL: the default model shipped with s2m-geo.

    \b
    Example:
      s2m-geo model-info
      s2m-geo model-info runs/small/model.safetensors
    """
    import json

    if model is None:
        from ..predict.runners import default_model_path

        model = default_model_path()
    meta = _read_meta(model)
    if as_json:
        click.echo(json.dumps(meta.to_dict(), indent=2))
        return
    d = meta.to_dict()
    click.echo(f"{model}")
    click.echo(f"  architecture   {d['architecture']} (format {d['format_version']}), backbone {d['backbone']}")
    click.echo(f"  classes        {meta.class_table.name}: " + ", ".join(c.name for c in meta.class_table))
    click.echo(f"  bands          pre {d['bands']['pre']}, post {d['bands']['post']}")
    click.echo(f"  tile           {d['tile_size']} px, default overlap {d['default_overlap']} px")
    if d.get("training_gsd_m"):
        click.echo(f"  training GSD   {d['training_gsd_m']} m")
    t = d.get("training") or {}
    if t:
        click.echo(
            f"  training       stage {t.get('stage')}, epoch {t.get('epoch')}, "
            f"{t.get('train_tiles')} tiles, config {t.get('config_file')}"
        )
    te = t.get("text_encoder") or {}
    if isinstance(te, dict) and te.get("embed_dim"):
        click.echo(f"  text encoder   {te.get('name')} ({te['embed_dim']}-d, {te.get('source')})")
    if d.get("metrics"):
        click.echo(
            "  metrics        "
            + ", ".join(f"{k} {v:.4f}" for k, v in d["metrics"].items() if isinstance(v, (int, float)))
        )


def _read_meta(model: Path):
    if not model.exists():
        raise InputError(f"{model}: model file not found; check the path")
    if model.suffix.lower() == ".onnx":
        from ..model import load_onnx_model

        return load_onnx_model(model).meta
    from ..model import read_package_meta

    return read_package_meta(model)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--onnx",
    "onnx_out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output ONNX file (two inputs pre, post; output logits).",
)
@click.option("--tile-size", default=None, type=click.IntRange(32), help="Tile size of the export sample.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export(model: Path, onnx_out: Path, tile_size: int | None, overwrite: bool) -> None:
    """Export a model package to a two-input ONNX model carrying the same metadata.

    \b
    Example:
      s2m-geo export runs/small/model.safetensors --onnx small.onnx
    """
    from ..model import export_onnx

    if onnx_out.exists() and not overwrite:
        raise InputError(f"{onnx_out}: already exists; pass --overwrite or choose another name")
    _read_meta(model)
    click.echo(str(export_onnx(model, onnx_out, tile_size=tile_size)))


cli.add_command(batch_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="s2m-geo")


if __name__ == "__main__":
    main()
