"""The ``s2m-geo`` command line: a thin layer over the Python API.

Exit codes (DESIGN.md §3): 0 done; 2 bad usage or bad input; 1 unexpected failure;
130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from . import __version__
from .errors import InputError, S2MError
from .progress import MODES, Progress

progress_option = click.option(
    "--progress", "progress_mode", type=click.Choice(MODES), default="auto", show_default=True,
    help="Progress display: a bar on a terminal, or one JSON object per line on stderr.")


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
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)


def _sigterm_to_interrupt(signum, frame):  # SIGTERM takes the same clean-up path as Ctrl-C
    raise KeyboardInterrupt


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s2m-geo")
def cli() -> None:
    """Find and describe change between two georeferenced scenes (S2M, "Masks Can Talk")."""
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


@cli.command("sample-data")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=1536, show_default=True, type=click.IntRange(64, 200_000),
              help="Scene side in pixels (square scene).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed: same seed, same scene.")
@click.option("--gsd", default=0.5, show_default=True, type=click.FloatRange(min=0.01),
              help="Ground sample distance of pre (and label), metres.")
@click.option("--post-crs", default=None, help="Write post on another CRS, e.g. EPSG:4326.")
@click.option("--post-gsd", default=None, type=click.FloatRange(min=0.01),
              help="Write post at another ground sample distance, metres.")
@click.option("--nodata-border", default=0, show_default=True, type=click.IntRange(0),
              help="Add a nodata collar of this many pixels to post.")
@click.option("--overwrite", is_flag=True, help="Replace existing pre.tif/post.tif/label.tif.")
@progress_option
def sample_data(outdir: Path, size: int, seed: int, gsd: float, post_crs: str | None,
                post_gsd: float | None, nodata_border: int, overwrite: bool, progress_mode: str) -> None:
    """Write a synthetic Gaza-like scene pair into OUTDIR: pre.tif, post.tif, label.tif.

    \b
    Example:
      s2m-geo sample-data demo --size 2048 --seed 3 --post-crs EPSG:4326
    """
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    from .synthetic import SceneSpec, write_scene

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
    spec = SceneSpec(size=size, seed=seed, gsd=gsd, post_crs=post_crs, post_gsd=post_gsd,
                     nodata_border=nodata_border)
    with Progress(progress_mode) as progress:
        paths = write_scene(outdir, spec, progress=progress.callback("synthesize"))
    for p in paths.values():
        click.echo(str(p))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="s2m-geo")


if __name__ == "__main__":
    main()
