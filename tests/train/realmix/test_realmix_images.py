"""realmix images on disk: finding them, label rasters left out."""

from __future__ import annotations

import pytest

from s2m_geo.errors import InputError
from s2m_geo.train import realmix as rm


def test_find_images_skips_labels_and_reports_missing(image_dir, tmp_path):
    found = rm.find_images(image_dir)
    names = [p.relative_to(image_dir).as_posix() for _, p in found]
    assert names == ["buildings/tile1.png", "buildings/tile3.png", "parkinglot/tile0.png", "parkinglot/tile2.png"]
    with pytest.raises(InputError, match="not found"):
        rm.find_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .png"):
        rm.find_images(tmp_path / "empty")
