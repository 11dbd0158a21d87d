"""The files of a batch output folder: their names, in one place.

``OUT/SCENE.gpkg``, ``OUT/SCENE_changes.tif``, ``OUT/SCENE_quicklook.png``, the done marker
``OUT/SCENE.done.json`` (written last), the merged ``OUT/all_changes.gpkg`` and the lock
``OUT/.s2m-batch.lock``. The reports (:mod:`s2m_geo.report`) read them by these names.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import temp_name_bytes
from ..escaping import NAME_MAX_BYTES

MARKER_VERSION = 3  # 2: inputs recorded file by file, with sidecars and SHA-256; 3: the raster's style


MERGED_NAME = "all_changes.gpkg"


LOCK_NAME = ".s2m-batch.lock"


def scene_files(out_dir: str | Path, scene_id: str) -> dict[str, Path]:
    """The output files of one scene."""
    out = Path(out_dir)
    return {
        "gpkg": out / f"{scene_id}.gpkg",
        "raster": out / f"{scene_id}_changes.tif",
        "style": out / f"{scene_id}_changes.qml",  # the raster's QGIS style, written beside it
        "quicklook": out / f"{scene_id}_quicklook.png",
        "marker": out / f"{scene_id}.done.json",
    }


def scene_glob(out_dir: str | Path, scene_id: str) -> str:
    """Where a scene's outputs go, as one pattern (what an error without a file name is about)."""
    return f"{Path(out_dir) / scene_id}.*"


#: What GDAL or SQLite may add to a file's (temporary) name while writing it: ``.aux.xml``,
#: ``-journal``, ``-wal``, ``.ovr``, ``.msk``.
SIDECAR_BYTES = max(map(len, (".aux.xml", "-journal", "-wal", ".ovr", ".msk")))


def longest_name_bytes(scene_id: str) -> int:
    """The longest file name, in bytes, a scene id makes in the batch folder: a temporary of
    one of its files (or of the raster's ``.qml`` beside it) with a sidecar."""
    names = [p.name for p in scene_files(".", scene_id).values()] + [f"{scene_id}_changes.qml"]
    return max(temp_name_bytes(n) for n in names) + SIDECAR_BYTES


#: The longest scene id, in bytes of UTF-8 (non-ASCII characters take 2-4 bytes), whose
#: file names fit the file system's 255 bytes.
MAX_SCENE_ID_BYTES = NAME_MAX_BYTES - longest_name_bytes("")
