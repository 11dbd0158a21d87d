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


@pytest.mark.integration
@pytest.mark.parametrize("size, fails", [("800k", "merge"), ("1100k", "report")])
def test_a_batch_on_a_disk_that_fills_up(tmp_path, tiny_model, tiny_tmpfs, size, fails):
    """Rule 9 on a real full disk (a tmpfs of ``size``; five 256² scenes need about 1.1 MiB
    with their merged layers and reports): the scene that no longer fits fails naming where;
    on the smaller disk the merged layers fail too, told in the report, which is still
    written; on the larger one the report itself no longer fits, which the command says,
    naming the file. Exit 3, no traceback, no temporary left behind. (The sizes that lead to
    each case follow the files' sizes.)"""
    import subprocess

    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import cli_command

    scene = write_scene(tmp_path / "in", SceneSpec(size=256, seed=1))
    manifest = tmp_path / "in" / "scenes.csv"
    manifest.write_text("scene_id,pre,post\n" + "".join(f"s{i},pre.tif,post.tif\n" for i in range(1, 6)))
    assert scene["pre"].parent == manifest.parent
    out = tiny_tmpfs(size) / "out"
    cmd = cli_command("batch", manifest, "-o", out, "--model", tiny_model, "--workers", "1", "--progress", "none")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "a file" not in proc.stderr
    told = [line for line in proc.stdout.splitlines() if line.strip().startswith(("failed ", "report not written"))]
    assert told and all(f"{out}/" in line for line in told), proc.stdout
    if fails == "merge":
        report = (out / "report.md").read_text()
        assert "**failed**" in report and "check the free disk space, then run again" in report
    else:
        assert f"report not written: {out}/report." in proc.stdout, proc.stdout
        assert "check the free disk space, then run again" in proc.stdout
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
