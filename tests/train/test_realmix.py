"""Real-imagery change synthesis (realmix): nuisance, pairs, labels, writer, config wiring."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from s2m_geo.classes import class_table_from_dict, load_class_table
from s2m_geo.errors import InputError
from s2m_geo.train import realmix as rm
from s2m_geo.train.config import load_train_config
from s2m_geo.train.realmix import folder as rm_folder

UCM = "usgs-ucmerced-urban/images"


def _bg(seed: int, n: int = 160) -> np.ndarray:
    """A small generated stand-in for a real tile: smooth ground, some roof-like blocks, grain."""
    r = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(r.random((n, n, 3)), (6, 6, 0))
    img = 100 + (base - base.mean()) * 900 + r.normal(0, 4, (n, n, 3))
    for _ in range(6):
        y, x = r.integers(0, n - 20, 2)
        h, w = r.integers(8, 30, 2)
        img[y : y + h, x : x + w] = r.uniform(80, 220, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _diff(p: rm.RealPair) -> np.ndarray:
    return np.abs(p.pre.astype(np.int16) - p.post.astype(np.int16)).mean(-1)


# --- pseudo_change ----------------------------------------------------------------------------


def test_pseudo_change_keeps_dtype_shape_and_is_bounded():
    img = _bg(0)
    for s in range(8):
        out = rm.pseudo_change(img, np.random.default_rng(s))
        assert out.dtype == np.uint8 and out.shape == img.shape
        d = np.abs(out.astype(np.int16) - img).mean(-1)
        assert 0.3 < d.mean() < 35, d.mean()  # it changes pixels, but not wholesale
        assert np.percentile(d, 99) < 90
    # other layouts and dtypes
    u16 = img[..., 0].astype(np.uint16) * 200
    o16 = rm.pseudo_change(u16, np.random.default_rng(1))
    assert o16.dtype == np.uint16 and o16.shape == u16.shape
    assert np.abs(o16.astype(np.float64) - u16).mean() < 0.15 * 65535
    f = img.astype(np.float32) / 255
    of = rm.pseudo_change(f, np.random.default_rng(2))
    assert of.dtype == np.float32 and of.shape == f.shape and 0 <= of.min() and of.max() <= 1
    four = np.concatenate([img, img[..., :1]], -1)
    assert rm.pseudo_change(four, np.random.default_rng(3)).shape == four.shape
    assert np.array_equal(rm.pseudo_change(img, np.random.default_rng(4), strength=0), img)


def test_pseudo_change_is_deterministic_and_varies():
    img = _bg(1)
    a = rm.pseudo_change(img, np.random.default_rng(5))
    b = rm.pseudo_change(img, np.random.default_rng(5))
    c = rm.pseudo_change(img, np.random.default_rng(6))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


# --- pairs ------------------------------------------------------------------------------------


def test_synthesize_pair_is_deterministic():
    for s in range(4):
        p = rm.synthesize_pair(_bg(s), np.random.default_rng([9, s]), [_bg(50 + s)])
        q = rm.synthesize_pair(_bg(s), np.random.default_rng([9, s]), [_bg(50 + s)])
        assert (p.pre.tobytes(), p.post.tobytes(), p.label.tobytes()) == (
            q.pre.tobytes(),
            q.post.tobytes(),
            q.label.tobytes(),
        )
        assert p.kind == q.kind and p.objects == q.objects


def test_no_change_kinds_have_zero_labels():
    for s in range(6):
        same = rm.synthesize_pair(_bg(s), np.random.default_rng(s), kind="identical")
        assert np.array_equal(same.pre, same.post) and not same.label.any()
        nc = rm.synthesize_pair(_bg(s), np.random.default_rng(s), kind="nochange")
        assert not nc.label.any() and not np.array_equal(nc.pre, nc.post)
        dis = rm.synthesize_pair(_bg(s), np.random.default_rng(s), kind="distractor")
        assert not dis.label.any() and dis.pre.shape == dis.post.shape == _bg(s).shape


def test_change_labels_only_where_pre_and_post_differ():
    seen: set[int] = set()
    inside, level = [], []
    for s in range(30):
        bg, donor = _bg(100 + s), _bg(200 + s)
        clean = rm.synthesize_pair(bg, np.random.default_rng(s), [donor], kind="change", nuisance=False)
        assert clean.objects, "a change pair places at least one object"
        d = _diff(clean)
        for c in np.unique(clean.label)[1:]:
            m = clean.label == c
            seen.add(int(c))
            # every labelled object really changed between the (clean) epochs
            assert d[m].mean() > 12, (s, c, d[m].mean())
            assert (d[m] > 6).mean() > 0.8, (s, c)
        # the same pair with the nuisance: labelled pixels stand out from the pseudo-change level
        noisy = rm.synthesize_pair(bg, np.random.default_rng(s), [donor], kind="change")
        assert np.array_equal(noisy.label, clean.label)
        nc = rm.synthesize_pair(bg, np.random.default_rng(1000 + s), kind="nochange")
        level.append(np.median(_diff(nc)))
        inside += [np.median(_diff(noisy)[noisy.label == c]) for c in np.unique(noisy.label)[1:]]
    assert seen == set(range(1, 7))  # every change class is drawn
    assert np.median(inside) > 2 * np.median(level), (np.median(inside), np.median(level))


def test_label_ids_follow_the_table():
    table = load_class_table()
    for s in range(10):
        p = rm.synthesize_pair(_bg(s), np.random.default_rng(s), kind="change")
        assert p.label.dtype == np.uint8 and p.label.max() < table.num_classes
    # only the classes asked for
    only = {"greenhouse_new": 6, "building_new": 2}
    for s in range(8):
        p = rm.synthesize_pair(_bg(s), np.random.default_rng(s), ids=only, kind="change")
        assert set(np.unique(p.label)) <= {0, 2, 6}
    # a two-class table gets every change as 1; a table without those classes is refused
    binary = class_table_from_dict(
        {
            "name": "bin",
            "classes": [
                {"id": 0, "name": "no_change", "category": "none", "change_type": "none", "color": "#000000"},
                {"id": 1, "name": "change", "category": "change", "change_type": "changed", "color": "#ffffff"},
            ],
        }
    )
    assert set(rm.class_ids(binary).values()) == {1}
    other = class_table_from_dict(
        {
            "name": "x",
            "classes": [
                {"id": 0, "name": "no_change", "category": "none", "change_type": "none", "color": "#000000"},
                {"id": 1, "name": "tree_lost", "category": "tree", "change_type": "lost", "color": "#00ff00"},
                {"id": 2, "name": "tree_new", "category": "tree", "change_type": "new", "color": "#00aa00"},
            ],
        }
    )
    with pytest.raises(InputError, match="none of the realmix classes"):
        rm.class_ids(other)


def test_kinds_mix_has_enough_no_change():
    kinds = [rm.synthesize_pair(_bg(0, 64), np.random.default_rng(s), nuisance=False).kind for s in range(200)]
    assert 0.25 <= sum(k != "change" for k in kinds) / len(kinds) <= 0.5
    assert "identical" in kinds and "distractor" in kinds


# --- files ------------------------------------------------------------------------------------


@pytest.fixture()
def image_dir(tmp_path):
    root = tmp_path / "imgs"
    for i in range(4):
        sub = root / ("buildings" if i % 2 else "parkinglot")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_bg(i, 80)).save(sub / f"tile{i}.png")
    (root / "label").mkdir()  # label rasters are never used as imagery
    Image.fromarray(np.full((80, 80), 1, np.uint8)).save(root / "label" / "tile0.png")
    Image.fromarray(_bg(9, 80)).save(root / "mask.png")
    return root


def test_find_images_skips_labels_and_reports_missing(image_dir, tmp_path):
    found = rm.find_images(image_dir)
    names = [p.relative_to(image_dir).as_posix() for _, p in found]
    assert names == ["buildings/tile1.png", "buildings/tile3.png", "parkinglot/tile0.png", "parkinglot/tile2.png"]
    with pytest.raises(InputError, match="not found"):
        rm.find_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .png"):
        rm.find_images(tmp_path / "empty")


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


# --- config and trainer wiring ----------------------------------------------------------------


def _cfg(tmp_path, source) -> os.PathLike:
    cfg = {"data": {"tile_size": 64, "train": [source]}, "train": {"device": "cpu"}}
    path = tmp_path / "conf" / "train.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_parses_realmix_and_rejects_missing_folder(image_dir, tmp_path):
    cfg = load_train_config(_cfg(tmp_path, {"realmix": {"images": "../imgs", "count": 5, "seed": 7}}))
    spec = cfg.train_sources[0]["realmix"]
    assert spec == {"images": [tmp_path / "conf" / "../imgs"], "count": 5, "seed": 7, "size": 256}
    assert spec["images"][0].resolve() == image_dir.resolve()
    json.dumps(cfg.to_dict())  # serialisable into the training summary
    missing = load_train_config(_cfg(tmp_path, {"realmix": {"images": "../nowhere", "count": 5}}))
    from s2m_geo.train.trainer import _sources

    with pytest.raises(InputError, match=r"nowhere.*not found"):  # when the data is built
        _sources(missing.train_sources, tmp_path / "run", load_class_table())
    with pytest.raises(InputError, match="needs 'images'"):
        load_train_config(_cfg(tmp_path, {"realmix": {"count": 5}}))
    with pytest.raises(InputError, match="unknown key"):
        load_train_config(_cfg(tmp_path, {"realmix": {"images": "../imgs", "cuont": 5}}))


def test_trainer_generates_realmix_once_into_the_run_folder(image_dir, tmp_path):
    from s2m_geo.train.trainer import _sources

    cfg = load_train_config(_cfg(tmp_path, {"realmix": {"images": "../imgs", "count": 3, "seed": 2, "size": 64}}))
    run = tmp_path / "run"
    srcs = _sources(cfg.train_sources, run, load_class_table())
    assert len(srcs) == 3 and all(s.height == 64 for s in srcs)
    folder = run / "data" / "realmix-64-seed2-n3"
    assert srcs[0].label.parent == folder / "label"
    before = (folder / rm.MANIFEST).stat().st_mtime_ns
    _sources(cfg.train_sources, run, load_class_table())
    assert (folder / rm.MANIFEST).stat().st_mtime_ns == before


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
