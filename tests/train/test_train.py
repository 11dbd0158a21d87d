"""End-to-end training on tiny tiles: two stages, checkpoints, resume, evaluation."""

import json

import numpy as np
import pytest
import yaml
from safetensors import safe_open

from s2m_geo.errors import InputError
from s2m_geo.model import load_package
from s2m_geo.synthetic import SceneSpec, write_scene
from s2m_geo.testing import TINY_MODEL_CONFIG
from s2m_geo.train.config import load_train_config
from s2m_geo.train.trainer import train

TINY = {
    "seed": 3,
    "classes": "gaza_change",
    "model": dict(TINY_MODEL_CONFIG),
    "text_encoder": {"name": "ViT-B-32", "text_cfg": {"width": 32, "layers": 1, "heads": 2}, "embed_dim": 32},
    "data": {"tile_size": 64, "train": [], "val": []},
    "train": {
        "batch_size": 4,
        "lr": 0.001,
        "lr_schedule": "cosine",
        "stage1_epochs": 2,
        "stage2_epochs": 1,
        "max_steps_per_epoch": 3,
        "device": "cpu",
    },
}


def _config(tmp_path, scene, **train_overrides):
    cfg = json.loads(json.dumps(TINY))
    triplet = {k: str(scene[k]) for k in ("pre", "post", "label")}
    cfg["data"]["train"] = [{"scenes": [triplet]}]
    cfg["data"]["val"] = [{"scenes": [triplet]}]
    cfg["train"].update(train_overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(path):
    with safe_open(str(path), "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.filterwarnings("ignore:.*random weights.*")
def test_two_stage_training_resume_and_package(tmp_path):
    cfg = _config(tmp_path, write_scene(tmp_path / "scene", SceneSpec(size=192, seed=0)))
    final = train(cfg, tmp_path / "run")
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in log] == [(1, 1), (1, 2), (2, 1)]
    assert all(np.isfinite(r["loss"]) for r in log)
    assert "contrastive" not in log[0] and "contrastive" in log[2]  # text only in stage 2
    assert 0 <= log[-1]["val_fscd"] <= 1 and "val_sek" in log[-1]
    model, meta = load_package(final)
    assert meta.class_table.num_classes == 7 and meta.tile_size == 64
    assert meta.training["stage"] == 2
    assert meta.metrics["fscd"] == pytest.approx(log[-1]["val_fscd"], abs=1e-6)

    # interrupted during stage 1 epoch 2, then resumed: the same weights as the straight run
    def stop(stage, done, total):
        if stage.startswith("train stage 1 epoch 2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run2", progress=stop)
    assert json.loads((tmp_path / "run2" / "state.json").read_text())["epoch"] == 1
    with pytest.raises(InputError, match="pass resume to continue") as exc:
        train(cfg, tmp_path / "run2")
    assert exc.value.params == ("resume", "out")
    resumed = train(cfg, tmp_path / "run2", resume=True)
    a, b = _weights(final), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_config_errors_name_the_file(tmp_path, small_scene):
    path = _config(tmp_path, small_scene)
    data = yaml.safe_load(path.read_text())
    data["train"]["learning_rate"] = 1
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"config.yaml: unknown key\(s\) \['learning_rate'\]"):
        load_train_config(path)
    data["train"].pop("learning_rate")
    data["data"]["train"] = []
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="lists no training data"):
        load_train_config(path)
    data = yaml.safe_load(_config(tmp_path, small_scene).read_text())
    data["data"]["normalization"] = {"mean": [0.5, 0.5], "std": [0.2, 0.2]}  # 3 bands
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="config.yaml: data.normalization needs 3 means and 3 stds"):
        load_train_config(path)
    data["data"]["normalization"] = {"mean": [0.5] * 3, "std": [0.2] * 3, "scale": ".nan"}
    path.write_text(yaml.safe_dump(data).replace("'.nan'", ".nan"))
    with pytest.raises(InputError, match="data.normalization mean, std and scale must be finite"):
        load_train_config(path)


@pytest.mark.parametrize(
    "section, key, value, words",
    [
        ("train", "lr", float("nan"), "train.lr must be a finite number > 0, got nan"),
        ("train", "lr", -1e-4, "train.lr must be a finite number > 0"),
        ("train", "weight_decay", float("inf"), "train.weight_decay must be a finite number >= 0"),
        ("train", "backbone_lr", -1.0, "train.backbone_lr must be a finite number >= 0"),
        ("train", "loss", {"tau": 0.0}, "train.loss.tau must be a finite number > 0"),
        ("train", "loss", {"dice": float("nan")}, "train.loss.dice must be a finite number >= 0"),
        ("data", "bands", [0, -1, 2], r"data.bands are 1-based band numbers \(e.g. \[1, 2, 3\]\), got \[0, -1, 2\]"),
        ("data", "post_bands", [1, 2], "data.post_bands must list as many bands as data.bands"),
    ],
)
def test_bad_training_values_are_refused_before_anything_is_written(tmp_path, small_scene, section, key, value, words):
    path = _config(tmp_path, small_scene)
    data = yaml.safe_load(path.read_text())
    data[section][key] = value
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    with pytest.raises(InputError, match="config.yaml: " + words):
        train(path, out)
    assert not out.exists()


def test_a_run_that_fails_before_its_first_epoch_leaves_no_folder(tmp_path, small_scene):
    path = _config(tmp_path, small_scene)
    data = yaml.safe_load(path.read_text())
    data["data"]["train"] = [{"folder": str(tmp_path / "no-such-folder")}]
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    with pytest.raises(InputError):
        train(path, out)
    assert not out.exists()


def test_packaged_configs_parse():
    from importlib import resources

    for name in ("s2m_small_cpu.yaml", "s2m_dinov3_vits16.yaml"):
        with resources.as_file(resources.files("s2m_geo.configs") / name) as p:
            cfg = load_train_config(p)
            assert cfg.train_sources and cfg.loss["contrastive"] == 0.5 and cfg.loss["tau"] == 0.7
    research = resources.files("s2m_geo.configs") / "research"
    names = sorted(f.name for f in research.iterdir() if f.name.endswith(".yaml"))
    assert names
    for name in names:
        with resources.as_file(research / name) as p:
            cfg = load_train_config(p)
            assert cfg.classes == "binary_change" and cfg.train_sources
