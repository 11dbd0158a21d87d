"""Which names are one file, and the checks every writing command runs before any work."""

from __future__ import annotations

import os

import pytest

from s2m_geo.errors import InputError
from s2m_geo.outputs import check_outputs, same_file


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
