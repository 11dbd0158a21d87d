"""The command line's shared options, in one registry: how a scene pair is predicted
(``predict``, ``batch``), the model, polygon options, progress and class tables."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..progress import MODES


def int_list(value: str | None, param: str) -> list[int] | None:
    """``"1,2,3"`` -> ``[1, 2, 3]`` (1-based band numbers) for the option ``param``; None when
    not given."""
    if not value:
        return None
    try:
        bands = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(
            f"{{{param}}} {value}: give band numbers separated by commas, e.g. 1,2,3", params=(param,)
        ) from None
    if not bands or min(bands) < 1:
        raise InputError(f"{{{param}}} {value}: band numbers start at 1, e.g. 1,2,3", params=(param,))
    return bands


_OPTIONS = [
    click.option("--tile-size", type=click.IntRange(32, 8192), default=None, help="Tile size (default: the model's)."),
    click.option(
        "--overlap", type=click.IntRange(0), default=None, help="Tile overlap in pixels (default: the model's)."
    ),
    click.option(
        "--batch-size", type=click.IntRange(1), default=4, show_default=True, help="Tile pairs per forward pass."
    ),
    click.option(
        "--block-tiles",
        type=click.IntRange(1),
        default=4,
        show_default=True,
        help="Tiles per block side (the unit of parallel work; memory grows with its square).",
    ),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True),
    click.option(
        "--runtime",
        type=click.Choice(["auto", "torch", "onnx"]),
        default="auto",
        show_default=True,
        help="How a model package runs: auto = onnxruntime on the CPU (exported once and cached), torch elsewhere.",
    ),
    click.option("--bands", default=None, help="Bands of pre (and post) to use, e.g. 1,2,3."),
    click.option("--post-bands", default=None, help="Bands of post, when they differ from pre's."),
    click.option("--crs", default=None, help="Target CRS (default: pre's)."),
    click.option(
        "--resolution",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Target pixel size in CRS units (default: pre's).",
    ),
    click.option(
        "--zero-nodata",
        is_flag=True,
        help="Treat pixels that are 0 in every band as nodata when a raster declares no nodata value.",
    ),
]


def prediction_options(f: Callable) -> Callable:
    """Add the shared options; the command receives them as one ``options: PredictOptions``."""

    @functools.wraps(f)
    def wrapper(
        *args,
        tile_size,
        overlap,
        batch_size,
        block_tiles,
        device,
        runtime,
        bands,
        post_bands,
        crs,
        resolution,
        zero_nodata,
        **kwargs,
    ):
        from ..predict.pipeline import PredictOptions

        kwargs["options"] = PredictOptions(
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            block_tiles=block_tiles,
            device=device,
            runtime=runtime,
            bands=int_list(bands, "bands"),
            post_bands=int_list(post_bands, "post_bands"),
            crs=crs,
            resolution=resolution,
            zero_as_nodata=zero_nodata,
        )
        return f(*args, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


#: Where the chosen progress mode is kept for the error handler (``click.Context.meta``).
PROGRESS_META_KEY = "s2m_geo.progress"


def _remember_progress_mode(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta[PROGRESS_META_KEY] = value
    return value


def output_option(help: str, *, required: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output FILE``: what a command writes (its formats said in ``help``)."""
    return click.option(
        "-o",
        "--output",
        "output",
        required=required,
        default=None,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


progress_option = click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(MODES),
    default="auto",
    show_default=True,
    is_eager=True,  # known before any other option can fail, so its error is in the same mode
    callback=_remember_progress_mode,
    help="Progress display: a bar on a terminal, or one JSON object per line on stderr.",
)


classes_option = click.option(
    "--classes",
    "classes",
    default="gaza_change",
    show_default=True,
    help="Class table: a packaged name or a YAML file.",
)


def load_table(classes: str) -> Any:
    """The class table named by ``--classes``."""
    from ..classes import load_class_table

    return load_class_table(classes)


model_option = click.option(
    "--model",
    "model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Model package (.safetensors) or two-input ONNX model (default: the shipped model).",
)


def vector_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--min-area`` and ``--simplify``: how change regions become polygons."""
    f = click.option(
        "--simplify",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Simplify polygon outlines with this tolerance, metres (topology kept).",
    )(f)
    return click.option(
        "--min-area",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Drop change polygons smaller than this ground area, m².",
    )(f)
