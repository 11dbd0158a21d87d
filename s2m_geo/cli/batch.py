"""``s2m-geo batch``: many scene pairs on a local Dask cluster or on one that already runs.

A thin layer over :func:`s2m_geo.batch.run_batch`. Exit codes: 0 every scene complete;
3 some scenes failed (the others completed; the report lists the errors); 2 bad usage or
bad input (e.g. a bad manifest: the message names the file); 1 unexpected failure;
130 interrupted (SIGINT/SIGTERM: the work is cancelled, no temporary file is left, and a
rerun skips the scenes already complete).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..progress import Progress
from .options import model_option, prediction_options, progress_option, vector_options


class BatchProgress:
    """Two bars on a terminal (scenes, tiles); JSON lines with ``--progress json``."""

    def __init__(self, mode: str) -> None:
        self.base = Progress(mode)
        self.mode = self.base.mode
        self.bars: dict[str, Any] = {}
        self.lock = threading.Lock()

    def update(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            if self.mode == "json":
                self.base.update(stage, done, total)
            elif self.mode == "bar":
                from tqdm import tqdm

                bar = self.bars.get(stage)
                if bar is None:
                    bar = self.bars[stage] = tqdm(
                        total=total,
                        desc=stage,
                        file=self.base.stream,
                        position=0 if stage == "scenes" else 1,
                        leave=True,
                        dynamic_ncols=True,
                    )
                bar.total = total
                bar.n = done
                bar.refresh()

    def message(self, text: str) -> None:
        with self.lock:
            self.base.message(text)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _memory_limit(value: str):
    v = value.strip().lower()
    if v in ("auto", "0", "none"):
        return "auto" if v == "auto" else 0
    try:
        from dask.utils import parse_bytes

        parse_bytes(value)
    except (ValueError, TypeError):
        raise InputError(
            f"{{memory_limit}} {value}: give a size such as 4GiB, or auto", params=("memory_limit",)
        ) from None
    return value


@click.command("batch")
@click.argument("manifest", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if needed): per scene SCENE.gpkg, SCENE_changes.tif, "
    "SCENE_quicklook.png; all_changes.gpkg, report.md, report.html.",
)
@click.option(
    "--pre-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Instead of a manifest: folder of pre scenes, paired with --post-dir by file name.",
)
@click.option(
    "--post-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of post scenes (same file names as in --pre-dir).",
)
@click.option(
    "--pattern",
    default="*.tif",
    show_default=True,
    help="Which files of --pre-dir/--post-dir are scenes (wildcards, case-insensitive).",
)
@model_option
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Local cluster: worker processes (default: one per CPU core, at most one per 2 GiB of RAM).",
)
@click.option(
    "--threads-per-worker",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Local cluster: scenes one worker runs at a time.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Use a running Dask cluster, e.g. tcp://10.0.0.5:8786, instead of a local one. Inputs, "
    "model and output folder must be at the same paths on its workers.",
)
@click.option(
    "--gpu-per-task",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Each scene needs this much of the workers' GPU resource (dask worker --resources GPU=1).",
)
@click.option(
    "--split-above",
    "split_above",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="MPX",
    help="Scenes larger than this (megapixels of pre) are spread over all workers "
    "block by block instead of running as one task.",
)
@click.option(
    "--torch-threads",
    type=click.IntRange(1),
    default=None,
    help="Torch threads per scene (default on a local cluster: cores / (workers x threads)).",
)
@click.option(
    "--memory-limit",
    default="auto",
    show_default=True,
    help="Local cluster: memory limit per worker (e.g. 4GiB), or auto.",
)
@click.option("--force", is_flag=True, help="Redo scenes whose outputs are already complete.")
@click.option(
    "--zones",
    "zones_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Polygons (any CRS): add change per zone to the reports, as 's2m-geo zones' on all_changes.gpkg.",
)
@click.option("--zones-field", default=None, help="Field of --zones that names each zone (default: row number).")
@vector_options
@prediction_options
@click.option(
    "--quicklook-size",
    type=click.IntRange(64, 8192),
    default=1024,
    show_default=True,
    help="Longest side of the quicklook PNGs, pixels.",
)
@progress_option
def batch(
    manifest: Path | None,
    out_dir: Path,
    pre_dir: Path | None,
    post_dir: Path | None,
    pattern: str,
    model: Path | None,
    workers: int | None,
    threads_per_worker: int,
    scheduler: str | None,
    gpu_per_task: float | None,
    split_above: float | None,
    torch_threads: int | None,
    memory_limit: str,
    force: bool,
    zones_path: Path | None,
    zones_field: str | None,
    min_area: float,
    simplify: float,
    options,
    quicklook_size: int,
    progress_mode: str,
) -> None:
    """Detect and describe changes in many scene pairs: a MANIFEST or two folders.

    MANIFEST is a CSV (header scene_id,pre,post[,pre_date,post_date]) or YAML list of the
    same keys; relative paths are relative to the manifest, paths are taken literally.
    Or give --pre-dir and --post-dir: files with the same name are a pair.

    Scenes run as tasks on a local Dask cluster (--workers) or on a running one
    (--scheduler); each worker loads the model once. Scenes whose outputs are complete
    (checked against their SCENE.done.json) are skipped, so an interrupted batch resumes
    where it stopped; --force redoes them. A failing scene is reported and the others go on.

    Exit codes: 0 all scenes complete; 3 some scenes failed (see report.md); 2 bad usage or
    input; 130 interrupted.

    \b
    Example:
      s2m-geo batch scenes.csv -o results/ --model model.safetensors
      s2m-geo batch --pre-dir pre/ --post-dir post/ -o results/ --workers 4
      s2m-geo batch scenes.yaml -o /shared/results --scheduler tcp://10.0.0.5:8786 --gpu-per-task 1
      s2m-geo batch scenes.csv -o results/ --zones districts.gpkg --zones-field name
    """
    from ..batch import ScenesFailed, pair_folders, read_manifest, run_batch

    folders = pre_dir is not None or post_dir is not None
    if manifest is not None and folders:
        raise InputError(
            f"{manifest}: give either a MANIFEST or {{pre_dir}}/{{post_dir}}, not both", params=("pre_dir", "post_dir")
        )
    if manifest is None and not folders:
        raise InputError(
            "no scenes: give a MANIFEST (CSV or YAML) or {pre_dir} and {post_dir}", params=("pre_dir", "post_dir")
        )
    if folders and (pre_dir is None or post_dir is None):
        raise InputError(
            f"{pre_dir or post_dir}: {{pre_dir}} and {{post_dir}} go together; give both folders",
            params=("pre_dir", "post_dir"),
        )
    if scheduler and workers is not None:
        raise InputError(
            f"{{workers}} {workers}: {{scheduler}} uses the cluster's own workers; drop {{workers}}",
            params=("workers", "scheduler"),
        )
    if manifest is not None:
        jobs = read_manifest(manifest)
        source = str(manifest)
    else:
        assert pre_dir is not None and post_dir is not None
        jobs = pair_folders(pre_dir, post_dir, pattern)
        source = f"{pre_dir} + {post_dir} ({pattern})"
    zones = None
    if zones_path is not None:
        from ..zones.io import read_zones

        zones = read_zones(zones_path, zones_field, param="zones_field")
    elif zones_field is not None:
        raise InputError(f"--zones-field {zones_field}: names the zones of --zones; give --zones too")
    if model is None:
        from ..predict.runners import default_model_path

        model = default_model_path()
    opts = options
    with BatchProgress(progress_mode) as progress:
        result = run_batch(
            jobs,
            out_dir,
            model,
            opts,
            min_area_m2=min_area,
            simplify_m=simplify,
            force=force,
            scheduler=scheduler,
            workers=workers,
            threads_per_worker=threads_per_worker,
            memory_limit=_memory_limit(memory_limit),
            gpu_per_task=gpu_per_task,
            split_above_mpx=split_above,
            torch_threads=torch_threads,
            quicklook_size=quicklook_size,
            progress=progress.update,
            message=progress.message,
            source=source,
            zones=zones,
        )
    counts = {k: sum(o.status == k for o in result.outcomes) for k in ("done", "skipped", "failed")}
    report = result.reports[0] if result.reports else Path(out_dir) / "report.md"
    click.echo(
        f"{report}: {len(result.outcomes)} scenes, {counts['done']} done, {counts['skipped']} already "
        f"complete, {counts['failed']} failed ({result.seconds:.1f} s)"
    )
    for o in result.failed:
        click.echo(f"  failed {o.scene_id}: {o.error}")
    if result.report_error:
        click.echo(f"  report not written: {result.report_error}")
    if result.failed:
        where = "above" if result.report_error else report
        raise ScenesFailed(f"{len(result.failed)} of {len(result.outcomes)} scenes failed; see {where}")
    if result.merge_error:
        raise ScenesFailed(f"every scene is complete but the merged layers are not: {result.merge_error}")
    if result.report_error:
        raise ScenesFailed(f"every scene is complete but the report is not: {result.report_error}")
