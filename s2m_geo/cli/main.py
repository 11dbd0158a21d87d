"""The ``s2m-geo`` command group and its error policy; each command lives in its own module.

Exit codes (docs/design.md §3.7): 0 done; 2 bad usage or bad input; 1 unexpected failure;
3 some scenes of a batch failed; 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import click

from .. import __version__
from ..errors import InputError, S2MError
from .ask import ask
from .batch import batch
from .describe import describe
from .evaluate import evaluate
from .model import export, import_onnx, model_info
from .options import PROGRESS_META_KEY
from .predict import predict
from .sample_data import sample_data
from .train import train
from .zones import zones


class _Group(click.Group):
    """Turns expected errors into one-line messages and exit codes.

    With ``--progress json`` an error is one JSON line (docs/design.md §3.5):
    ``{"error": text}``, plus, when it is about parameters, ``"template"`` (the message with
    ``{name}`` where each parameter is named) and ``"params"`` (name -> flag), so a front
    end can name the parameters in its own words.
    """

    _meta: dict = {}

    def make_context(self, *args, **kwargs) -> click.Context:
        ctx = super().make_context(*args, **kwargs)
        self._meta = ctx.meta  # shared with the sub-command's context
        return ctx

    def main(self, *args, **kwargs):
        self._meta = {}
        try:
            return super().main(*args, **{**kwargs, "standalone_mode": False})
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("s2m-geo: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            self._usage_error(exc)
            sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
        except InputError as exc:
            flags = flag_names(self)
            self._error(exc.render(flags), exc.template, {p: flags.get(p, p) for p in exc.params})
            sys.exit(exc.exit_code)
        except S2MError as exc:
            self._error(str(exc))
            sys.exit(exc.exit_code)
        except OSError as exc:  # disk full, permissions, read-only or vanished folders
            where = exc.filename or "a file"
            self._error(f"{where}: {exc.strerror or exc}; check the path, permissions and free disk space")
            sys.exit(2)
        except Exception as exc:
            if not isinstance(exc, _gis_errors()):
                raise
            msg = " ".join(str(exc.__cause__ or exc).split())[:300]
            self._error(
                f"GDAL could not read or write a file ({msg}); check the paths, permissions and free disk space"
            )
            sys.exit(2)

    def _json(self) -> bool:
        return self._meta.get(PROGRESS_META_KEY) == "json"

    def _error(self, text: str, template: str | None = None, params: dict[str, str] | None = None) -> None:
        if not self._json():
            click.echo(f"s2m-geo: error: {text}", err=True)
            return
        event: dict = {"error": text}
        if params:
            event.update(template=template, params=params)
        click.echo(json.dumps(event), err=True)

    def _usage_error(self, exc: click.ClickException) -> None:
        param = getattr(exc, "param", None)
        if not self._json():
            exc.show()
            return
        text = exc.format_message()
        if param is None or not param.name or not isinstance(param, click.Option):
            self._error(text)
            return
        template = text
        for opt in sorted(param.opts, key=len, reverse=True):
            template = template.replace(f"'{opt}'", "'{" + param.name + "}'")
        self._error(text, template, {param.name: max(param.opts, key=len)})


def flag_names(group: click.Group) -> dict[str, str]:
    """Each option's parameter name -> its long flag, over all commands (``tile_size`` ->
    ``--tile-size``); how the command line names a parameter a library error is about."""
    names: dict[str, str] = {}
    for command in group.commands.values():
        for param in command.params:
            if isinstance(param, click.Option):
                names.setdefault(param.name or "", max(param.opts, key=len))
    return names


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

    # rasterio's handler (below) is pushed for this thread only: GDAL's messages from other
    # threads (read-ahead, stitching), Dask workers and pyogrio's own GDAL went raw onto
    # stderr through GDAL's default handler ("Warning 1: TIFFReadDirectoryCheckOrder…" before
    # the one-line error), which writes to CPL_LOG instead when that is set. Failures are
    # still seen: GDAL reports them to the caller, not through the handler.
    os.environ.setdefault("CPL_LOG", os.devnull)
    import rasterio

    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    # GDAL's messages go through rasterio's handler into logging, not raw onto stderr; the
    # command reports failures itself, as one line
    ctx.with_resource(rasterio.Env())
    logging.getLogger("rasterio").setLevel(logging.CRITICAL)


for command in (predict, batch, sample_data, describe, ask, zones, evaluate, train, model_info, export, import_onnx):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="s2m-geo")
