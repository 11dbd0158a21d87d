"""``s2m-geo train``: the two-stage S2M training from a YAML config."""

from __future__ import annotations

from pathlib import Path

import click

from ..progress import Progress
from .options import progress_option


@click.command()
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
