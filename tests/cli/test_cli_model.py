"""describe / evaluate / train / model-info / export / import-onnx through the command line."""

import json
import os
import subprocess

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from s2m_geo.cli import cli
from s2m_geo.synthetic import SceneSpec, write_scene
from s2m_geo.testing import TINY_MODEL_CONFIG, cli_command


def run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res


def cli_proc(*args):
    return subprocess.run(cli_command(*args), capture_output=True, text=True)


def test_describe_text_and_json(small_scene):
    res = run("describe", small_scene["label"], "--json")
    assert res.exit_code == 0, res.output
    items = json.loads(res.output)
    assert items and {"class_id", "category", "change_type", "quantity", "direction", "sentence"} <= set(items[0])
    with rasterio.open(small_scene["label"]) as ds:
        present = sorted(set(np.unique(ds.read(1)).tolist()) - {0})
    assert [i["class_id"] for i in items] == present
    text = run("describe", small_scene["label"])
    assert text.exit_code == 0 and items[0]["sentence"] in text.output


@pytest.mark.integration
def test_describe_rejects_unknown_ids(tmp_path):
    path = tmp_path / "mask.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as ds:
        ds.write(np.full((1, 8, 8), 9, np.uint8))
    proc = cli_proc("describe", path)
    assert proc.returncode == 2 and str(path) in proc.stderr and "9" in proc.stderr


def test_evaluate_perfect_and_imperfect(tmp_path, small_scene):
    res = run("evaluate", small_scene["label"], small_scene["label"], "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["fscd"] == 1.0 and s["miou"] == 1.0 and s["oa"] == 1.0
    # a prediction that misses every destroyed building
    with rasterio.open(small_scene["label"]) as ds:
        profile, data = ds.profile, ds.read(1)
    pred = tmp_path / "pred.tif"
    with rasterio.open(pred, "w", **profile) as ds:
        ds.write(np.where(data == 1, 0, data)[None])
    s = json.loads(run("evaluate", pred, small_scene["label"], "--json").output)
    assert s["precision"] == 1.0 and s["recall"] < 1.0 and s["fscd"] < 1.0
    # folders paired by name
    (tmp_path / "p").mkdir(), (tmp_path / "l").mkdir()
    (tmp_path / "p" / "a.tif").write_bytes(pred.read_bytes())
    (tmp_path / "l" / "a.tif").write_bytes(small_scene["label"].read_bytes())
    s2 = json.loads(run("evaluate", tmp_path / "p", tmp_path / "l", "--json").output)
    assert s2["fscd"] == pytest.approx(s["fscd"]) and s2["pairs"] == 1


@pytest.mark.integration
def test_evaluate_size_mismatch_is_exit_2(tmp_path, small_scene):
    other = write_scene(tmp_path, SceneSpec(size=128))
    proc = cli_proc("evaluate", other["label"], small_scene["label"])
    assert proc.returncode == 2 and "predict on the label's grid" in proc.stderr


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:.*random weights.*")
def test_train_model_info_export(tmp_path):
    scene = write_scene(tmp_path / "scene", SceneSpec(size=128, seed=1))
    triplet = {k: str(scene[k]) for k in ("pre", "post", "label")}
    cfg = {
        "seed": 1,
        "model": dict(TINY_MODEL_CONFIG),
        "text_encoder": {"text_cfg": {"width": 32, "layers": 1, "heads": 2}, "embed_dim": 32},
        "data": {"tile_size": 64, "train": [{"scenes": [triplet]}], "val": [{"scenes": [triplet]}]},
        "train": {"batch_size": 2, "stage1_epochs": 1, "stage2_epochs": 1, "max_steps_per_epoch": 2, "device": "cpu"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = cli_proc("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    package = tmp_path / "run" / "model.safetensors"
    assert proc.stdout.strip() == str(package)
    events = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]
    assert any(e.get("stage", "").startswith("train stage 2") for e in events)
    info = json.loads(run("model-info", package, "--json").output)
    assert info["architecture"] == "s2m" and info["tile_size"] == 64
    assert info["class_table"]["name"] == "gaza_change" and "fscd" in info["metrics"]
    assert "vit_small_patch16_dinov3" in run("model-info", package).output
    onnx = tmp_path / "m.onnx"
    res = run("export", package, "--onnx", onnx)
    assert res.exit_code == 0, res.output
    assert json.loads(run("model-info", onnx, "--json").output)["class_table"] == info["class_table"]
    again = cli_proc("export", package, "--onnx", onnx)
    assert again.returncode == 2 and "already exists" in again.stderr
    # a second run into the same folder must not clobber it silently
    proc = cli_proc("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert proc.returncode == 2 and "--resume" in proc.stderr


@pytest.mark.integration
def test_model_info_refuses_a_pickle(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.")
    proc = cli_proc("model-info", bad)
    assert proc.returncode == 2 and str(bad) in proc.stderr


def test_predict_warns_when_pre_and_post_are_one_file(tmp_path, tiny_model, small_scene):
    """Same file twice (also through a link): a warning on stderr in every progress mode."""
    from click.testing import CliRunner

    from s2m_geo.cli import cli

    link = tmp_path / "again.tif"
    link.symlink_to(small_scene["pre"])
    for mode, expect in (("none", "warning: "), ("json", '{"warning": ')):
        res = CliRunner().invoke(
            cli,
            [
                "predict",
                str(small_scene["pre"]),
                str(link),
                "-o",
                str(tmp_path / f"{mode}.tif"),
                "--model",
                str(tiny_model),
                "--progress",
                mode,
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        lines = [ln for ln in res.stderr.splitlines() if "both pre and post" in ln]
        assert len(lines) == 1 and lines[0].startswith(expect)
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            str(small_scene["pre"]),
            str(small_scene["post"]),
            "-o",
            str(tmp_path / "b.tif"),
            "--model",
            str(tiny_model),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0 and "warning" not in res.stderr


def _export_onnx(path, names=("pre", "post")):
    """A two-input change model of any size: logits (1, |post - pre|) per pixel."""
    import torch

    class Diff(torch.nn.Module):
        def forward(self, pre, post):
            d = (post - pre).abs().mean(dim=1, keepdim=True)
            return torch.cat([torch.ones_like(d), d], 1)

    x = torch.zeros(1, 3, 64, 64)
    axes = {0: "N", 2: "H", 3: "W"}
    torch.onnx.export(
        Diff(),
        (x, x),
        str(path),
        input_names=list(names),
        output_names=["logits"],
        dynamic_axes={n: axes for n in (*names, "logits")},
        opset_version=17,
        dynamo=False,
    )
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_import_onnx_then_model_info_says_what_is_not_recorded(tmp_path):
    """import-onnx checks and writes; model-info on the result prints words, never None;
    errors are one line naming the flag."""
    src = _export_onnx(tmp_path / "m.onnx")
    out = tmp_path / "p.onnx"
    args = ["import-onnx", str(src), "-o", str(out), "--classes", "binary_change", "--tile-size", "64"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1] == str(out) and "ran on a random 2 x 3 x 64 x 64 pair" in res.stdout
    info = CliRunner().invoke(cli, ["model-info", str(out)])
    assert info.exit_code == 0 and "None" not in info.output
    assert "architecture   custom (format 1)\n" in info.output and "training GSD   not recorded" in info.output
    assert "metrics        not recorded" in info.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.stderr
    same = CliRunner().invoke(cli, ["import-onnx", str(src), "-o", str(src), "--classes", "binary_change"])
    assert same.exit_code == 2
    assert same.stderr.strip() == (
        f"s2m-geo: error: {src}: --output is the model input {src}; writing it would destroy the input, "
        "choose another output name"
    )
    ab = _export_onnx(tmp_path / "ab.onnx", names=("a", "b"))
    res = CliRunner().invoke(
        cli, ["import-onnx", str(ab), "-o", str(tmp_path / "x.onnx"), "--classes", "binary_change"]
    )
    assert res.exit_code == 2 and "pass --inputs a,b (pre's input first)" in res.stderr
    res = CliRunner().invoke(
        cli,
        ["import-onnx", str(ab), "-o", str(tmp_path / "x.onnx"), "--classes", "binary_change", "--inputs", "a,b"],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["import-onnx", str(src), "-o", str(tmp_path / "y.onnx"), "--classes", "gaza_change"])
    assert res.exit_code == 2 and "pass --classes a table with 2 classes" in res.stderr
    assert not os.path.exists(tmp_path / "y.onnx")
