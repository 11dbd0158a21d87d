"""``s2m-geo sample-data``: synthetic scene pairs with labels."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..progress import Progress
from .options import progress_option


@click.command("sample-data")
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
            raise InputError(
                f"{{post_crs}} {post_crs}: not a CRS GDAL knows; give e.g. EPSG:4326", params=("post_crs",)
            ) from None
    if not overwrite:
        existing = [str(outdir / f) for f in ("pre.tif", "post.tif", "label.tif") if (outdir / f).exists()]
        if existing:
            raise InputError(
                f"{existing[0]}: already exists; pass {{overwrite}} or choose another folder", params=("overwrite",)
            )
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the folder ({exc.strerror}); choose a writable place") from None
    spec = SceneSpec(size=size, seed=seed, gsd=gsd, post_crs=post_crs, post_gsd=post_gsd, nodata_border=nodata_border)
    with Progress(progress_mode) as progress:
        paths = write_scene(outdir, spec, progress=progress.callback("synthesize"))
    for p in paths.values():
        click.echo(str(p))
