"""The main job as one call: two scenes in, described change polygons (and a raster) out.

:func:`detect_changes` runs the prediction pipeline with the vectorizer as a sink, so polygons
are made core by core while the raster streams out, then writes the ``changes`` and
``scenes`` layers (:mod:`s2m_geo.vector.output`). The command line and the QGIS plugin call
this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import published_together
from .outputs import check_outputs, claimed
from .predict.pipeline import PredictOptions, PredictResult, predict
from .vector.output import ChangeCollector, VectorOutput, scenes_path, vector_driver


@dataclass
class DetectResult:
    """What :func:`detect_changes` wrote and found."""

    vectors: list[Path]
    raster: Path | None
    prediction: PredictResult
    changes: int
    scene_sentences: list[str]


def _model_file(model: Any) -> Path | None:
    return Path(model) if isinstance(model, (str, Path)) else None


def detect_changes(
    pre: str | Path,
    post: str | Path,
    output: str | Path,
    model: Any,
    options: PredictOptions | None = None,
    raster: str | Path | None = None,
    probabilities: str | Path | None = None,
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
    scene_id: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    client: Any = None,
) -> DetectResult:
    """Detect, vectorise and describe the changes between ``pre`` and ``post``.

    ``output``: ``.gpkg`` (both layers, QGIS styles), ``.geojson``, ``.fgb`` or ``.parquet``.
    ``raster``: also keep the change raster (COG) there. ``min_area_m2`` drops regions smaller
    than that ground area; ``simplify_m`` simplifies outlines (topology-preserving, metres).
    """
    output = Path(output)
    vector_driver(output)
    outputs = [("output", output), ("raster", raster), ("probabilities", probabilities)]
    if vector_driver(output) != "GPKG":
        outputs.append(("output", scenes_path(output)))
    check_outputs(outputs, {"pre": pre, "post": post, "model": _model_file(model)}, overwrite)
    # all outputs appear together at the end, or none (atomic.published_together)
    with claimed([path for _, path in outputs]), published_together():
        sink = _VectorSink(
            output,
            scene_id or Path(pre).stem,
            model.name if hasattr(model, "name") else Path(model).name,
            min_area_m2,
            simplify_m,
        )
        with sink:
            result = predict(
                pre,
                post,
                raster,
                model,
                options,
                probabilities=probabilities,
                overwrite=overwrite,
                progress=progress,
                client=client,
                sinks=[sink],
            )
            if progress:
                progress("vectorize", 0, 1)
            collector, files = sink.finish(pre, post)
    if progress:
        progress("vectorize", 1, 1)
    return DetectResult(files, result.raster, result, len(collector), [s for _, s, _ in collector.scene_quadruples()])


class _VectorSink:
    """The prediction sink that makes the vector output: a vectorizer on the target grid whose
    regions go to a :class:`ChangeCollector` as soon as they are complete, and its rows to
    the file (:class:`VectorOutput`) as soon as they are described. A context manager: left
    without :meth:`finish`, it leaves no file."""

    def __init__(self, output: Path, scene_id: str, model_name: str, min_area_m2: float, simplify_m: float) -> None:
        self.output, self.scene_id, self.model_name = output, scene_id, model_name
        self.min_area_m2, self.simplify_m = min_area_m2, simplify_m
        self.collector: ChangeCollector | None = None
        self.vectorizer: Any = None
        self.writer: VectorOutput | None = None

    def __enter__(self) -> _VectorSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.__exit__(*exc)

    def start(self, grid: Any, meta: Any) -> None:
        from .describe.geo import GeoFrame
        from .vector.vectorize import Vectorizer

        frame = GeoFrame.from_grid(grid.crs, grid.transform, grid.width, grid.height)
        self.writer = VectorOutput(self.output, meta.class_table, frame.crs)
        self.collector = ChangeCollector(
            frame,
            meta.class_table,
            self.scene_id,
            self.model_name,
            self.min_area_m2,
            self.simplify_m,
            rows=self.writer.add,
        )
        self.vectorizer = Vectorizer(grid.transform, grid.height, grid.width, on_region=self.collector)

    def __call__(self, core: Any, classes: Any, confidence: Any, probabilities: Any) -> None:
        self.vectorizer(core, classes, confidence, probabilities)
        # the regions this core completed are described now, in the stitching thread beside the
        # model, not all at the end after it (a batch costs ~1 ms more than its regions)
        assert self.collector is not None
        self.collector.flush()

    def finish(self, pre: str | Path, post: str | Path) -> tuple[ChangeCollector, list[Path]]:
        """Close the last regions, write the ``scenes`` layer and publish: the collector (the
        scene's sums) and the files made."""
        assert self.collector is not None and self.writer is not None, "start() was not called"
        self.vectorizer.finish()
        self.collector.flush()
        return self.collector, self.writer.finish(self.collector.scenes_frame(pre, post))
