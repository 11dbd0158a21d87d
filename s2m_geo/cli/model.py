"""``s2m-geo model-info``, ``export`` and ``import-onnx``: what a model is, its ONNX export, and
bringing your own ONNX change model (docs/models.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..predict.runners import read_model_meta
from .options import int_list, output_option

if TYPE_CHECKING:  # pragma: no cover
    from ..model.package import PackageMeta


@click.command("model-info")
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
    meta = read_model_meta(model)
    if as_json:
        click.echo(json.dumps(meta.to_dict(), indent=2))
        return
    click.echo(f"{model}")
    for line in info_lines(meta):
        click.echo(f"  {line}")


def _fmt(v: object) -> str:
    return "not recorded" if v is None or v == "" else str(v)


def info_lines(meta: PackageMeta) -> list[str]:
    """What ``model-info`` prints about a model, one line per field; what the metadata does
    not record is said in words (an imported ONNX model has no training history), never as
    ``None``."""
    d = meta.to_dict()
    arch = f"{d['architecture']} (format {d['format_version']})"
    if meta.backbone:
        arch += f", backbone {meta.backbone}"
    norm = d["normalization"]
    lines = [
        f"architecture   {arch}",
        f"classes        {meta.class_table.name}: " + ", ".join(c.name for c in meta.class_table),
        f"bands          pre {d['bands']['pre']}, post {d['bands']['post']}",
        f"normalization  mean {norm['mean']}, std {norm['std']}, scale {norm['scale']:g}",
        f"tile           {d['tile_size']} px, default overlap {d['default_overlap']} px",
        "training GSD   " + (f"{d['training_gsd_m']} m" if d.get("training_gsd_m") else "not recorded"),
    ]
    t = d.get("training") or {}
    if t:
        lines.append(
            f"training       stage {_fmt(t.get('stage'))}, epoch {_fmt(t.get('epoch'))}, "
            f"{_fmt(t.get('train_tiles'))} tiles, config {_fmt(t.get('config_file'))}"
        )
    else:
        lines.append("training       not recorded")
    te = t.get("text_encoder") or {}
    if isinstance(te, dict) and te.get("embed_dim"):
        lines.append(f"text encoder   {_fmt(te.get('name'))} ({te['embed_dim']}-d, {_fmt(te.get('source'))})")
    numbers = {k: v for k, v in (d.get("metrics") or {}).items() if isinstance(v, (int, float))}
    lines.append(
        "metrics        " + (", ".join(f"{k} {v:.4f}" for k, v in numbers.items()) if numbers else "not recorded")
    )
    return lines


@click.command()
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
    from ..outputs import check_outputs

    check_outputs({"onnx_out": onnx_out}, {"model": model}, overwrite)
    read_model_meta(model)
    click.echo(str(export_onnx(model, onnx_out, tile_size=tile_size)))


@click.command("import-onnx")
@click.argument("model", type=click.Path(path_type=Path))
@output_option(
    "Output ONNX file: the model with its s2m-geo metadata.",
)
@click.option(
    "--classes",
    "classes",
    required=True,
    help="Class table of the model's K+1 output channels: a packaged name (e.g. binary_change) or a YAML file.",
)
@click.option("--bands", default=None, help="Bands of pre the model reads, e.g. 1,2,3 (default: 1..C, or 1,2,3).")
@click.option("--post-bands", default=None, help="Bands of post, when they differ from pre's.")
@click.option(
    "--normalization",
    default="imagenet",
    show_default=True,
    help="How band values become model input: imagenet, none (value / scale), or MEAN1,MEAN2,MEAN3/STD1,STD2,STD3.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=255.0,
    show_default=True,
    help="The band value of full range (255 for 8-bit, e.g. 10000 for Sentinel-2 reflectance).",
)
@click.option(
    "--tile-size",
    type=click.IntRange(32, 8192),
    default=None,
    help="Tile size (default: the model's fixed size, or 512).",
)
@click.option("--overlap", type=click.IntRange(0), default=None, help="Default tile overlap (default: tile size / 8).")
@click.option(
    "--inputs", default=None, help="The model's two input names, pre's first, when they are not pre,post (e.g. a,b)."
)
@click.option(
    "--architecture", default="custom", show_default=True, help="A name for the network, kept in the metadata."
)
@click.option(
    "--gsd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Ground sample distance the model was trained at, metres (information).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def import_onnx(
    model: Path,
    output: Path,
    classes: str,
    bands: str | None,
    post_bands: str | None,
    normalization: str,
    scale: float,
    tile_size: int | None,
    overlap: int | None,
    inputs: str | None,
    architecture: str,
    gsd: float | None,
    overwrite: bool,
) -> None:
    """Check a two-input ONNX change model made elsewhere and attach the s2m-geo metadata.

    MODEL takes pre and post (N x C x H x W float32, normalised) and returns logits
    N x (K+1) x H x W, one channel per class of --classes. It is run once on a random pair
    at the tile size (and a second size when H and W are dynamic) before anything is
    written. The contract and a worked example: docs/models.md.

    \b
    Example:
      s2m-geo import-onnx change.onnx -o packaged.onnx --classes binary_change --bands 1,2,3 --tile-size 256
      s2m-geo predict sample_data/pre.tif sample_data/post.tif -o x.gpkg --model packaged.onnx
    """
    from ..model.foreign import import_onnx as run_import
    from .options import load_table

    result = run_import(
        model,
        output,
        load_table(classes),
        bands=int_list(bands, "bands"),
        post_bands=int_list(post_bands, "post_bands"),
        normalization=normalization,
        scale=scale,
        tile_size=tile_size,
        overlap=overlap,
        training_gsd_m=gsd,
        inputs=None if inputs is None else inputs.split(","),
        architecture=architecture,
        overwrite=overwrite,
    )
    meta = result.meta
    norm = meta.normalization
    click.echo(f"{model}: checked")
    for line in result.checks:
        click.echo(f"  {line}")
    click.echo(
        f"  metadata: classes {meta.class_table.name} ({meta.num_classes}), bands pre {meta.bands['pre']} "
        f"post {meta.bands['post']}, normalization mean {norm['mean']} std {norm['std']} scale {norm['scale']:g}, "
        f"tile {meta.tile_size} px, overlap {meta.default_overlap} px"
    )
    click.echo(str(result.path))
