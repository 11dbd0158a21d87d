"""Many scene pairs on ``dask.distributed``: one task per scene, resume, isolation, report.

:func:`run_batch` runs :func:`~s2m_geo.detect.detect_changes` on every pair of a manifest
(:func:`read_manifest`) or of two folders (:func:`pair_folders`), on a
``distributed.LocalCluster`` it starts (default) or on a cluster that already runs
(``scheduler="tcp://HOST:PORT"``), and writes into one output folder::

    OUT/SCENE.gpkg              changes + scenes layers, QGIS styles (as ``s2m-geo predict``)
    OUT/SCENE_changes.tif       the change raster (COG, class colours)
    OUT/SCENE_quicklook.png     change overlay on the post image, legend, scale bar, north arrow
    OUT/SCENE.done.json         written last: what was made, with sizes and SHA-256 of each file
    OUT/all_changes.gpkg        both layers of every complete scene, the same QGIS styles
    OUT/report.md, report.html  per-scene and total counts/areas by class, sentences, failures
    OUT/report.json             the same, for scripts

- **Scenes are tasks.** Each worker process loads the model once (the pipeline's per-process
  cache, :func:`s2m_geo.predict.pipeline.worker_model`) and runs whole scenes. With
  ``gpu_per_task`` every scene task asks for ``resources={"GPU": n}``. A scene larger than
  ``split_above_mpx`` runs from the client instead, its blocks spread over the workers
  (``detect_changes(..., client=client)``, the pipeline's block scheme).
- **Atomic, verified outputs.** A scene is produced in a hidden staging folder
  ``OUT/.SCENE.XXXX.partial/`` and its files are renamed into place; the done marker comes
  last. A scene counts as complete only if its marker matches the job (inputs unchanged,
  same model and result-relevant options), every file it lists has the recorded size and
  SHA-256, and the GeoPackage opens with both layers and the recorded row counts. Complete
  scenes are skipped on a rerun (``force=True`` redoes them). Staging folders and temporary
  files left by a killed run are removed when the next run starts (and when a run is
  interrupted), so the folder never holds a half-written file.
- **Isolation.** A scene that fails (unreadable file, disjoint footprints, a worker that
  died, ...) becomes a ``failed`` outcome with its error; every other scene still runs. The
  command line exits with 3 (:class:`ScenesFailed`) when any scene failed.
- **One batch per folder.** An advisory lock (``OUT/.s2m-batch.lock``) refuses a second
  batch writing into the same folder at the same time.

With a running cluster (``scheduler=``), input files, the model and the output folder must
be reachable under the same absolute paths from the workers (a shared file system), and the
workers need s2m-geo installed.
"""

from .cluster import default_workers
from .layout import MERGED_NAME, scene_files
from .manifest import SceneJob, pair_folders, read_manifest
from .produce import BatchSettings, produce_scene, run_scene
from .results import BatchResult, SceneOutcome, ScenesFailed
from .resume import sweep_partials, verify_scene
from .run import run_batch

__all__ = [
    "SceneJob",
    "SceneOutcome",
    "BatchResult",
    "BatchSettings",
    "ScenesFailed",
    "read_manifest",
    "pair_folders",
    "run_batch",
    "run_scene",
    "produce_scene",
    "verify_scene",
    "sweep_partials",
    "scene_files",
    "default_workers",
    "MERGED_NAME",
]
