"""realmix LEVIR-layout folders: layout, determinism, idempotence, atomicity, real tiles."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from s2m_geo.train import realmix as rm
from s2m_geo.train.realmix import folder as rm_folder

UCM = "usgs-ucmerced-urban/images"


def _digest(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def test_write_realmix_layout_determinism_and_idempotence(image_dir, tmp_path):
    out = rm.write_realmix(tmp_path / "a", image_dir, count=6, seed=3, size=64)
    for d in ("A", "B", "label"):
        assert sorted(p.name for p in (out / d).iterdir()) == [f"realmix3_{i:05d}.png" for i in range(6)]
    lab = np.asarray(Image.open(out / "label" / "realmix3_00000.png"))
    pre = np.asarray(Image.open(out / "A" / "realmix3_00000.png"))
    assert lab.shape == (64, 64) and pre.shape == (64, 64, 3) and lab.max() < 7
    man = json.loads((out / rm.MANIFEST).read_text())
    assert man["key"]["seed"] == 3 and man["key"]["count"] == 6
    assert sum(man["stats"]["kinds"].values()) == 6
    assert not list(out.rglob("*.partial"))
    # the same seed elsewhere: the same bytes
    again = rm.write_realmix(tmp_path / "b", image_dir, count=6, seed=3, size=64)
    assert _digest(out) == _digest(again)
    # a complete folder is left alone
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    rm.write_realmix(tmp_path / "a", image_dir, count=6, seed=3, size=64)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    # another seed / a smaller count rebuilds and leaves no stale pairs
    rm.write_realmix(tmp_path / "a", image_dir, count=4, seed=3, size=64)
    assert len(list((out / "label").iterdir())) == 4
    assert json.loads((out / rm.MANIFEST).read_text())["key"]["count"] == 4


def test_write_realmix_is_atomic(image_dir, tmp_path, monkeypatch):
    real = rm.synthesize_pair
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("interrupted")
        return real(*a, **k)

    monkeypatch.setattr(rm_folder, "synthesize_pair", flaky)  # where make_pair looks it up
    with pytest.raises(RuntimeError):
        rm.write_realmix(tmp_path / "x", image_dir, count=5, seed=1, size=64)
    out = tmp_path / "x"
    assert not (out / rm.MANIFEST).exists()  # not complete: no manifest
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left
    for p in out.rglob("*.png"):  # what is there is whole
        Image.open(p).load()
    monkeypatch.setattr(rm_folder, "synthesize_pair", real)
    rm.write_realmix(out, image_dir, count=5, seed=1, size=64)
    assert (out / rm.MANIFEST).exists()
    assert _digest(out) == _digest(rm.write_realmix(tmp_path / "y", image_dir, count=5, seed=1, size=64))


# --- real imagery -----------------------------------------------------------------------------


@pytest.mark.realdata
def test_realmix_on_ucmerced_tiles(realdata, tmp_path):
    images = realdata / UCM
    if not images.is_dir():
        pytest.skip(f"{images} not found")
    out = rm.write_realmix(tmp_path / "rm", images, count=10, seed=5, size=128)
    stats = json.loads((out / rm.MANIFEST).read_text())["stats"]
    assert sum(stats["kinds"].values()) == 10
    for name in sorted(p.name for p in (out / "label").iterdir()):
        pre = np.asarray(Image.open(out / "A" / name))
        post = np.asarray(Image.open(out / "B" / name))
        lab = np.asarray(Image.open(out / "label" / name))
        assert pre.shape == post.shape == (128, 128, 3) and lab.shape == (128, 128)
        assert lab.max() <= 6
        assert pre.std() > 10  # real texture, not a blank canvas
    # a real tile: identical and no-change pairs have empty labels
    tile = np.asarray(Image.open(sorted(images.rglob("*.png"))[0]).convert("RGB"))
    for kind in ("identical", "nochange"):
        p = rm.synthesize_pair(tile, np.random.default_rng(0), kind=kind)
        assert not p.label.any()
