"""The ``s2m-geo`` command group and its error policy; each command lives in its own module.

Exit codes (docs/design.md §3.7): 0 done; 2 bad usage or bad input; 1 unexpected failure;
3 some scenes of a batch failed; 130 interrupted.
"""

from __future__ import annotations

import signal
import sys

import click

from .. import __version__
from ..errors import S2MError
from .batch import batch
from .describe import describe
from .evaluate import evaluate
from .model import export, model_info
from .predict import predict
from .sample_data import sample_data
from .train import train
from .zones import zones


class _Group(click.Group):
    """Turns expected errors into one-line messages and exit codes."""

    def main(self, *args, **kwargs):
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


for command in (predict, batch, sample_data, describe, evaluate, train, model_info, export, zones):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="s2m-geo")
