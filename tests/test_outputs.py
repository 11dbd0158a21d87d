"""Which names are one file, and the checks every writing command runs before any work."""

from __future__ import annotations

import os

import pytest

from s2m_geo.errors import InputError
from s2m_geo.outputs import check_outputs, claimed, lock_path, same_file


def test_same_file_sees_links_dots_and_hard_links(tmp_path):
    a = tmp_path / "a.tif"
    a.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "l.tif").symlink_to(a)
    os.link(a, tmp_path / "h.tif")
    assert same_file(a, tmp_path / "l.tif") and same_file(a, tmp_path / "h.tif")
    assert same_file(a, tmp_path / "sub" / ".." / "a.tif")
    b = tmp_path / "b.tif"
    b.write_bytes(b"x")
    assert not same_file(a, b)
    assert not same_file(a, tmp_path / "new.tif")  # a file not written yet is no existing input
    assert same_file(tmp_path / "new.tif", tmp_path / "sub" / ".." / "NEW.tif")  # two outputs: case folds


def test_check_outputs_names_the_parameters(tmp_path):
    pre = tmp_path / "pre.tif"
    pre.write_bytes(b"x")
    with pytest.raises(InputError) as exc:
        check_outputs({"output": pre}, {"pre": pre}, overwrite=True)
    assert exc.value.params == ("output",) and "is the pre input" in str(exc.value)
    with pytest.raises(InputError) as exc:
        check_outputs([("output", tmp_path / "c.geojson"), ("output", tmp_path / "c.GEOJSON")], {}, overwrite=True)
    assert "output is also the output output" in str(exc.value)
    with pytest.raises(InputError, match="already exists"):
        check_outputs({"output": pre}, {}, overwrite=False)
    check_outputs({"output": tmp_path / "c.tif", "raster": None}, {"pre": pre, "model": None})  # fine


def test_an_output_name_is_claimed_for_the_run(tmp_path):
    """A second run writing the same output while the first runs is refused, not raced."""
    import subprocess
    import sys

    out = tmp_path / "c.gpkg"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from s2m_geo.outputs import claimed\n"
            f"with claimed([{str(out)!r}]):\n    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"c.gpkg: another s2m-geo run \\(process {holder.pid}\\) is writing it"):
            with claimed([out]):
                pass
    finally:
        holder.communicate("")
    with claimed([out]), claimed([out]):  # free again; and reentrant within one process
        assert lock_path(out).exists()
    assert not lock_path(out).exists()  # the lock file goes with the last release
