"""``s2m-geo model-info`` and ``s2m-geo export``: what a model is, and its ONNX export."""

from __future__ import annotations

from pathlib import Path

import click

from ..predict.runners import read_model_meta


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
