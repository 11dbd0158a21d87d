"""A batch on a full disk: every error names where it happened, and the merged layers failing
does not also cost the report (issue: 'exits 2 with a GDAL message that names no file and
writes no report')."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from s2m_geo.batch import run as batch_run
from s2m_geo.batch.manifest import SceneJob
from s2m_geo.batch.produce import error_text
from s2m_geo.batch.results import BatchResult, SceneOutcome
from s2m_geo.classes import load_class_table
from s2m_geo.report.render import render_html, render_markdown, report_data


def test_an_error_without_a_file_name_is_told_where_it_happened():
    from rasterio.errors import RasterioIOError

    gdal = RasterioIOError("TIFFAppendToStrip: Write error at scanline 512")
    assert error_text(gdal, "out/s1.*") == "out/s1.*: RasterioIOError: TIFFAppendToStrip: Write error at scanline 512"
    disk = OSError(errno.ENOSPC, "No space left on device", "out/.s1.gpkg.42.abc.partial.gpkg")
    assert error_text(disk, "out/s1.*") == "out/.s1.gpkg.42.abc.partial.gpkg: No space left on device"


def test_the_report_is_written_when_the_merged_layers_cannot_be(tmp_path, monkeypatch):
    import s2m_geo.report as report

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "write_merged", full)
    table = load_class_table()
    merged, why = batch_run._merge(tmp_path / "all_changes.gpkg", [], table)
    assert merged is None
    expected = "OSError: [Errno 28] No space left on device; check the free disk space, then run again"
    assert why == f"{tmp_path / 'all_changes.gpkg'}: {expected}"
    job = SceneJob("s1", "pre.tif", "post.tif")
    result = BatchResult(Path(tmp_path), [SceneOutcome(job, "skipped")], None, [], 1.0, "m.safetensors")
    result.merge_error = why
    assert result.exit_code == 3  # not 0: the merged layers are missing
    d = report_data(result, table)
    assert d["merge_error"] == why
    assert "No space left on device" in render_markdown(d, table) and "No space left on device" in render_html(d, table)


@pytest.mark.parametrize("failed", [False, True])
def test_exit_code_counts_failed_scenes_and_a_failed_merge(failed, tmp_path):
    job = SceneJob("s1", "pre.tif", "post.tif")
    outcome = SceneOutcome(job, "failed", "x") if failed else SceneOutcome(job, "skipped")
    result = BatchResult(Path(tmp_path), [outcome], None, [], 1.0, "m")
    assert result.exit_code == (3 if failed else 0)
