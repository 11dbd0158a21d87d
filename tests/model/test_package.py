"""Model packages (.safetensors + JSON header) and ONNX export (CPU, tiny models)."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_model

from s2m_geo.classes import load_class_table
from s2m_geo.errors import InputError
from s2m_geo.model import (
    META_KEY,
    PackageMeta,
    S2MConfig,
    build_model,
    export_onnx,
    load_onnx_model,
    load_package,
    read_package_meta,
    save_package,
)

TABLE = load_class_table("gaza_change")
TINY_VIT = dict(depth=4, embed_dim=64, num_heads=2)


def tiny_cfg(backbone: str = "vit_small_patch16_dinov3", **kw) -> S2MConfig:
    bkw = TINY_VIT if backbone == "vit_small_patch16_dinov3" else {}
    args = dict(
        backbone=backbone,
        backbone_kwargs=dict(bkw),
        num_classes=TABLE.num_classes,
        decoder_channels=32,
        attn_heads=2,
        align_heads=2,
    )
    args.update(kw)
    return S2MConfig(**args)


def make_meta(cfg: S2MConfig | None = None) -> PackageMeta:
    return PackageMeta(
        class_table=TABLE,
        config=cfg,
        tile_size=64,
        default_overlap=16,
        training_gsd_m=0.5,
        training={"epochs": [3, 2], "seed": 0, "dataset": "synthetic"},
        metrics={"SeK": 0.178, "Fscd": 0.6614, "mIoU": 0.71},
    )


def pair(b: int = 2, h: int = 64, w: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g), torch.randn(b, 3, h, w, generator=g)


def trained_like(model):
    """Give BatchNorm non-trivial running stats, as a trained model has."""
    model.train()
    with torch.no_grad():
        for s in range(3):
            model(*pair(2, 64, 64, seed=10 + s))
    return model.eval()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = trained_like(build_model(tiny_cfg()))
    path = tmp_path_factory.mktemp("pkg") / "tiny.s2m.safetensors"
    save_package(path, model, make_meta())
    return path, model


def write_with_meta(path: Path, model, meta_dict: dict) -> Path:
    save_model(model, str(path), metadata={META_KEY: json.dumps(meta_dict)})
    return path


# ---------------------------------------------------------------- round trips


def test_save_load_round_trip(package):
    path, model = package
    loaded, meta = load_package(path)
    assert not loaded.training
    pre, post = pair()
    with torch.no_grad():
        assert torch.equal(loaded(pre, post), model(pre, post))
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert meta.config == model.cfg
    # nothing but the package in the folder: the temp file was renamed
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # readable like any new file


def test_metadata_round_trip(package):
    path, model = package
    meta = read_package_meta(path)
    expected = make_meta(model.cfg)
    assert meta.to_dict() == expected.to_dict()
    d = meta.to_dict()
    assert d["format_version"] == 1 and d["architecture"] == "s2m"
    assert d["backbone"] == "vit_small_patch16_dinov3"
    assert d["bands"] == {"pre": [1, 2, 3], "post": [1, 2, 3]}
    assert d["normalization"]["scale"] == 255.0 and len(d["normalization"]["mean"]) == 3
    assert meta.class_table == TABLE
    assert PackageMeta.from_json(meta.to_json()).to_dict() == d


@pytest.mark.integration
def test_read_package_meta_needs_no_torch(package):
    path, _ = package
    code = (
        "import sys; from s2m_geo.model import read_package_meta; "
        f"m = read_package_meta({str(path)!r}); "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "print(m.class_table.num_classes, m.backbone)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(TABLE.num_classes), "vit_small_patch16_dinov3"]


def test_save_refuses_inconsistent_meta(package, tmp_path):
    _, model = package
    with pytest.raises(ValueError, match="config"):
        save_package(tmp_path / "x.safetensors", model, make_meta(tiny_cfg(decoder_channels=16)))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- refusals


class _Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors"])
def test_pickle_is_refused_without_unpickling(tmp_path, name):
    # the payload is live: unpickling really creates the marker file
    probe = tmp_path / "probe_marker"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()

    marker = tmp_path / "marker"
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=4))
    with pytest.raises(InputError, match="pickle") as err:
        load_package(evil)
    assert str(evil) in str(err.value)
    with pytest.raises(InputError, match="pickle"):
        read_package_meta(evil)
    assert not marker.exists()


def test_torch_save_zip_is_refused(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "model.pth"
    torch.save({"x": _Payload(marker)}, evil)
    with pytest.raises(InputError, match="never unpickles"):
        load_package(evil)
    assert not marker.exists()


def test_other_files_are_refused(tmp_path, package):
    path, model = package
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(InputError, match="nope.safetensors: model package not found"):
        load_package(missing)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(InputError, match="not a safetensors file"):
        load_package(junk)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError, match="truncated.safetensors"):
        load_package(truncated)
    plain = tmp_path / "plain.safetensors"
    save_model(model, str(plain))
    with pytest.raises(InputError, match="no 's2m_geo' header key"):
        load_package(plain)


def test_other_architecture_or_version_is_refused(tmp_path, package):
    _, model = package
    good = make_meta(model.cfg).to_dict()
    p = write_with_meta(tmp_path / "unet.safetensors", model, {**good, "architecture": "unet"})
    with pytest.raises(InputError, match="unet.safetensors.*'unet', expected 's2m'"):
        load_package(p)
    p = write_with_meta(tmp_path / "v2.safetensors", model, {**good, "format_version": 2})
    with pytest.raises(InputError, match="v2.safetensors.*format_version 2.*expected 1"):
        load_package(p)
    p = write_with_meta(tmp_path / "v0.safetensors", model, {**good, "format_version": 0})
    with pytest.raises(InputError, match="format_version 0"):
        read_package_meta(p)
    p = write_with_meta(tmp_path / "k.safetensors", model, {**good, "config": {**good["config"], "num_classes": 3}})
    with pytest.raises(InputError, match="class table"):
        read_package_meta(p)


def test_a_normalisation_that_is_not_finite_is_refused(tmp_path, package):
    """A NaN in the header would turn every input into NaN and predict "no change" silently."""
    _, model = package
    good = make_meta(model.cfg).to_dict()
    for i, bad in enumerate(({"mean": [float("nan")] * 3}, {"std": [0.2, 0.0, 0.2]}, {"scale": float("inf")})):
        meta = {**good, "normalization": {**good["normalization"], **bad}}
        p = write_with_meta(tmp_path / f"n{i}.safetensors", model, meta)
        with pytest.raises(
            InputError,
            match=f"n{i}.safetensors: invalid model package: 'normalization' (mean, std and scale|std and scale)",
        ):
            read_package_meta(p)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"config": {"backbone": "hf-hub:timm/resnet18.a1_in1k"}}, "'backbone' must be a timm model name"),
        ({"config": {"backbone": "https://example.org/evil"}}, "'backbone' must be a timm model name"),
        ({"config": {"backbone": "../../weights/x"}}, "'backbone' must be a timm model name"),
        ({"config": {"backbone_kwargs": {"pretrained_cfg_overlay": {"file": "/etc/passwd"}}}}, "may hold only"),
        ({"config": {"backbone_kwargs": {"checkpoint_path": "x.pth"}}}, "may hold only"),
        ({"config": {"backbone_kwargs": {"depth": 10**9}}}, "'backbone_kwargs.depth' must be a int in"),
        ({"config": {"backbone_kwargs": {"drop_path_rate": float("nan")}}}, "drop_path_rate' must be a float"),
        ({"config": {"backbone_kwargs": {"qkv_bias": "yes"}}}, "qkv_bias' must be a bool"),
        ({"tile_size": 100000}, "'tile_size' must be an integer in \\[32, 8192\\]"),
        # found by benchmarks/fuzz_inputs.py: each was a traceback (or unbounded memory) before
        ({"config": {"decoder_channels": 10**9}}, "'decoder_channels' must be an integer in \\[1, 4096\\]"),
        ({"config": {"align_heads": [4]}}, "'align_heads' must be an integer"),
        ({"config": {"attn_kv_pool": [8, 4, float("inf"), 1]}}, "cannot convert float infinity"),
        ({"config": {"backbone_kwargs": {"embed_dim": 8, "num_heads": 64}}}, "must be divisible by 'num_heads'"),
    ],
)
def test_a_header_is_data_checked_against_an_allow_list(tmp_path, package, change, words):
    """Nothing in a header may name a hub, a URL, a file or code, nor ask for unbounded work;
    all of it is refused by read_package_meta, before torch or timm is touched."""
    _, model = package
    good = make_meta(model.cfg).to_dict()
    meta = {**good, **change}
    if "config" in change:
        meta["config"] = {**good["config"], **change["config"]}
    p = write_with_meta(tmp_path / "h.safetensors", model, meta)
    with pytest.raises(InputError, match="h.safetensors: .*" + words):
        read_package_meta(p)


def test_a_header_timm_cannot_build_is_one_line(tmp_path, package):
    """Allowed keys with values timm rejects for this architecture (resnet takes no
    num_heads): a one-line error naming the file, not a traceback from inside timm."""
    _, model = package
    good = make_meta(model.cfg).to_dict()
    cfg = {**good["config"], "backbone": "resnet18", "backbone_kwargs": {"num_heads": 3}}
    p = write_with_meta(tmp_path / "odd.safetensors", model, {**good, "config": cfg})
    with pytest.raises(InputError, match="odd.safetensors: the network its header describes cannot be built"):
        load_package(p)


def test_weights_not_matching_config_are_refused(tmp_path, package):
    _, model = package
    good = make_meta(model.cfg).to_dict()
    lie = {**good, "config": {**good["config"], "decoder_channels": 16}}
    p = write_with_meta(tmp_path / "lie.safetensors", model, lie)
    with pytest.raises(InputError, match="lie.safetensors: the weights do not fit"):
        load_package(p)


# ---------------------------------------------------------------- ONNX


@pytest.mark.parametrize("backbone", ["vit_small_patch16_dinov3", "resnet18"])
def test_onnx_export_matches_torch(tmp_path, backbone):
    torch.manual_seed(0)
    model = trained_like(build_model(tiny_cfg(backbone)))
    pkg = save_package(tmp_path / "m.safetensors", model, make_meta())
    onnx_path = export_onnx(pkg, tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.safetensors"]
    assert stat.S_IMODE(onnx_path.stat().st_mode) == stat.S_IMODE(pkg.stat().st_mode)

    import onnx

    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert PackageMeta.from_json(props[META_KEY]).to_dict() == make_meta(model.cfg).to_dict()
    assert [i.name for i in proto.graph.input] == ["pre", "post"]
    assert [o.name for o in proto.graph.output] == ["logits"]

    om = load_onnx_model(onnx_path)
    assert om.num_classes == TABLE.num_classes and om.meta.config == model.cfg
    for b, h, w in [(2, 64, 64), (1, 96, 128), (1, 72, 88)]:
        pre, post = pair(b, h, w, seed=h)
        with torch.no_grad():
            ref = model(pre, post).numpy()
        got = om(pre.numpy(), post.numpy())
        diff = float(np.abs(got - ref).max())
        print(f"{backbone} {b}x{h}x{w}: ONNX vs torch max abs diff {diff:.2e}")
        assert got.shape == (b, TABLE.num_classes, h, w)
        assert diff < 1e-4


def _export_toy(path: Path, names: list[str], meta_json: str | None = None) -> Path:
    class Toy(torch.nn.Module):
        def forward(self, a, b):
            return torch.cat([a - b, a + b, a, b, a * b, a, b], 1)[:, :7]

    x = torch.zeros(1, 1, 32, 32)
    torch.onnx.export(
        Toy(), (x, x), str(path), input_names=names, output_names=["logits"], opset_version=17, dynamo=False
    )
    if meta_json is not None:
        import onnx

        proto = onnx.load(str(path))
        e = proto.metadata_props.add()
        e.key, e.value = META_KEY, meta_json
        onnx.save(proto, str(path))
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_with_wrong_inputs_is_refused(tmp_path):
    meta = PackageMeta(
        class_table=TABLE,
        architecture="toy",
        bands={"pre": [1], "post": [1]},
        normalization={"mean": [0.5], "std": [0.5], "scale": 255.0},
        tile_size=32,
        default_overlap=0,
    )
    bad = _export_toy(tmp_path / "wrong.onnx", ["image_a", "image_b"], meta.to_json())
    with pytest.raises(
        InputError,
        match=r"wrong.onnx: ONNX inputs are "
        r"\['image_a', 'image_b'\].*'pre' and 'post'",
    ):
        load_onnx_model(bad)
    nometa = _export_toy(tmp_path / "nometa.onnx", ["pre", "post"])
    with pytest.raises(InputError, match="nometa.onnx: ONNX model has no s2m-geo metadata"):
        load_onnx_model(nometa)
    # a user's own model (another architecture, fixed size) with the right contract works
    ok = load_onnx_model(_export_toy(tmp_path / "own.onnx", ["pre", "post"], meta.to_json()))
    assert ok.fixed_size == (32, 32) and ok.meta.config is None
    a = np.ones((1, 1, 32, 32), np.float32)
    assert ok(a, 2 * a).shape == (1, 7, 32, 32)
    with pytest.raises(ValueError, match="32 x 32 tiles only"):
        ok(np.ones((1, 1, 64, 64), np.float32), np.ones((1, 1, 64, 64), np.float32))
    # exported with a fixed batch of 1: any batch runs, one tile at a time (no onnxruntime error)
    assert ok.fixed_batch == 1
    rng = np.random.default_rng(0)
    pre, post = rng.random((3, 1, 32, 32), np.float32), rng.random((3, 1, 32, 32), np.float32)
    whole = ok(pre, post)
    assert whole.shape == (3, 7, 32, 32)
    for i in range(3):
        np.testing.assert_array_equal(whole[i : i + 1], ok(pre[i : i + 1], post[i : i + 1]))
    notonnx = tmp_path / "model.onnx"
    notonnx.write_bytes(b"\x80\x04junk")
    with pytest.raises(InputError, match="model.onnx: not a readable ONNX model"):
        load_onnx_model(notonnx)
    os.remove(notonnx)


@pytest.mark.slow
def test_onnx_export_real_size_vit_small_512(tmp_path):
    torch.manual_seed(0)
    model = build_model(S2MConfig(num_classes=TABLE.num_classes)).eval()
    pkg = save_package(
        tmp_path / "vits.safetensors", model, PackageMeta(class_table=TABLE, tile_size=512, default_overlap=64)
    )
    om = load_onnx_model(export_onnx(pkg, tmp_path / "vits.onnx"))
    assert om.fixed_size is None and om.meta.tile_size == 512
    pre, post = pair(1, 512, 512)
    with torch.no_grad():
        ref = model(pre, post).numpy()
    diff = float(np.abs(om(pre.numpy(), post.numpy()) - ref).max())
    print(f"ViT-S/16 512x512: ONNX vs torch max abs diff {diff:.2e}")
    assert diff < 1e-4


def test_header_length_with_a_pickle_like_low_byte_is_still_a_package(tmp_path):
    """A safetensors header of 0x..80 bytes starts with byte 0x80, like a pickle: not refused."""
    import json as _json
    import struct

    from s2m_geo.model.package import _check_safetensors

    header = {"__metadata__": {"x": ""}}
    body = _json.dumps(header).encode()
    pad = 0x180 - len(body)
    body = _json.dumps({"__metadata__": {"x": "y" * (pad)}}).encode()
    body = body + b" " * (0x180 - len(body))
    assert len(body) == 0x180
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    assert path.read_bytes()[0] == 0x80
    assert _check_safetensors(path)["__metadata__"]["x"].startswith("y")


def test_a_header_nested_too_deep_is_an_input_error():
    """Python's JSON reader recurses: a deeply nested header is refused, not a traceback."""
    from s2m_geo.model.package import PackageMeta

    with pytest.raises(InputError, match="d.safetensors: model metadata is not valid JSON"):
        PackageMeta.from_json("[" * 100_000 + "]" * 100_000, "d.safetensors")
