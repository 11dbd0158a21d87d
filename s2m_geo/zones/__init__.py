"""Change summarised by area: per zone polygon (:mod:`.summarize`, files in :mod:`.io`) and
per sector of a scene (:mod:`.sectors`)."""

from .sectors import CELLS, COMPASS, SectorCounts, scene_sectors, sector_columns
from .summarize import (
    NOT_COVERED_SENTENCE,
    STATUS_COVERED,
    STATUS_NOT_COVERED,
    STATUS_PARTLY,
    Pieces,
    ZoneSummary,
    grid_zones,
    split_by_zones,
    summarize_zones,
    zone_frame,
)

__all__ = [
    "CELLS",
    "COMPASS",
    "NOT_COVERED_SENTENCE",
    "STATUS_COVERED",
    "STATUS_NOT_COVERED",
    "STATUS_PARTLY",
    "Pieces",
    "SectorCounts",
    "ZoneSummary",
    "grid_zones",
    "scene_sectors",
    "sector_columns",
    "split_by_zones",
    "summarize_zones",
    "zone_frame",
]
