"""realmix in a training config and the trainer: parsing, errors, generated once."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from s2m_geo.classes import load_class_table
from s2m_geo.errors import InputError
from s2m_geo.train import realmix as rm
from s2m_geo.train.config import load_train_config


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
