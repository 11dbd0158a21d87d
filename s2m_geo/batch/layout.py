"""The files of a batch output folder: their names, in one place.

``OUT/SCENE.gpkg``, ``OUT/SCENE_changes.tif``, ``OUT/SCENE_quicklook.png``, the done marker
``OUT/SCENE.done.json`` (written last), the merged ``OUT/all_changes.gpkg`` and the lock
``OUT/.s2m-batch.lock``. The reports (:mod:`s2m_geo.report`) read them by these names.
"""

from __future__ import annotations

from pathlib import Path

MARKER_VERSION = 2  # 2: inputs recorded file by file, with sidecars and SHA-256


MERGED_NAME = "all_changes.gpkg"


LOCK_NAME = ".s2m-batch.lock"


def scene_files(out_dir: str | Path, scene_id: str) -> dict[str, Path]:
    """The output files of one scene."""
    out = Path(out_dir)
    return {
        "gpkg": out / f"{scene_id}.gpkg",
        "raster": out / f"{scene_id}_changes.tif",
        "quicklook": out / f"{scene_id}_quicklook.png",
        "marker": out / f"{scene_id}.done.json",
    }
