"""What a batch hands to the analyst: quicklooks, the merged GeoPackage and the reports.

- :func:`render_quicklook` — a PNG per scene: the change classes over the post image
  (resampled onto the change raster's grid), a legend with the class colours, a scale bar
  (true ground distance) and a north arrow (true north, also for rotated grids);
- :func:`write_merged` — ``all_changes.gpkg``: the ``changes`` and ``scenes`` layers of every
  complete scene, with the same QGIS styles as a single scene's GeoPackage;
- :func:`write_reports` — ``report.md``, ``report.html`` and ``report.json``: per-scene and
  total counts and areas by class, each scene's sentences (from its ``scenes`` layer), the
  failed scenes with their errors.

Every file is written under a temporary name and renamed (:mod:`s2m_geo.atomic`).
"""

from .merge import write_merged
from .quicklook import nice_length, render_quicklook
from .render import render_html, render_markdown, report_data, write_reports

__all__ = [
    "render_quicklook",
    "write_merged",
    "write_reports",
    "report_data",
    "render_markdown",
    "render_html",
    "nice_length",
]
