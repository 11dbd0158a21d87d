"""Bringing your own ONNX change model: ``import_onnx`` and the worked example of docs/models.md."""

from __future__ import annotations

import json
import re
import runpy
import shlex
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from s2m_geo.classes import load_class_table
from s2m_geo.cli import cli
from s2m_geo.errors import InputError
from s2m_geo.model import META_KEY, import_onnx, load_onnx_model, parse_normalization
from s2m_geo.model.normalization import IMAGENET

ROOT = Path(__file__).resolve().parents[2]
BINARY = load_class_table("binary_change")
GAZA = load_class_table("gaza_change")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


class Diff(torch.nn.Module):
    """pre, post -> 2 logits per pixel (any band count)."""

    def forward(self, pre, post):
        d = (post - pre).abs().mean(dim=1, keepdim=True)
        return torch.cat([torch.ones_like(d), d], 1)


class Conv(torch.nn.Module):
    """A 1x1 convolution of both epochs to ``k1`` logits: takes exactly ``c`` bands."""

    def __init__(self, c: int = 3, k1: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Conv2d(2 * c, k1, 1)

    def forward(self, pre, post):
        return self.head(torch.cat([pre, post], 1))


def export(module, path: Path, names=("pre", "post"), c=3, size=64, axes=(0, 2, 3), dtype=torch.float32) -> Path:
    x = torch.zeros(1, c, size, size, dtype=dtype)
    dyn = {n: {a: f"d{a}" for a in axes} for n in (*names, "logits")}
    torch.onnx.export(
        module.eval(),
        (x, x),
        str(path),
        input_names=list(names),
        output_names=["logits"],
        dynamic_axes=dyn,
        opset_version=17,
        dynamo=False,
    )
    return path


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- the worked example of docs/models.md, run as written ------------------------------------


def _doc_blocks() -> tuple[str, list[str], str]:
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    example = text[text.index("## Worked example") :]
    blocks = re.findall(r"```(\w+)\n(.*?)```", example, re.S)
    python = next(code for lang, code in blocks if lang == "python")
    bash = next(code for lang, code in blocks if lang == "bash")
    printed = next(code for lang, code in blocks if lang == "text")
    return python, [ln for ln in bash.splitlines() if ln.strip()], printed


def test_worked_example_of_the_docs_runs_and_predicts_what_torch_does(tmp_path, monkeypatch):
    """The doc's code, as written: export a torch module, import-onnx, model-info, predict on
    sample_data; the change raster is the torch module's argmax over the whole scene, pixel
    for pixel, and import-onnx prints what the doc shows."""
    python, commands, printed = _doc_blocks()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    (tmp_path / "change_model.py").write_text(python)
    assert commands[0] == "python change_model.py"
    namespace = runpy.run_path("change_model.py", run_name="__main__")
    outputs = {}
    for line in commands[1:]:
        args = shlex.split(line)
        assert args[0] == "s2m-geo"
        res = CliRunner().invoke(cli, args[1:], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        outputs[args[1]] = res.stdout
    assert outputs["import-onnx"] == printed
    assert "None" not in outputs["model-info"] and "training       not recorded" in outputs["model-info"]

    with rasterio.open("sample_data/pre.tif") as a, rasterio.open("sample_data/post.tif") as b:
        pre, post = a.read().astype(np.float32), b.read().astype(np.float32)
    mean = np.asarray(IMAGENET.mean, np.float32)[:, None, None]
    std = np.asarray(IMAGENET.std, np.float32)[:, None, None]
    with torch.no_grad():
        logits = namespace["ChangeNet"]().eval()(
            torch.from_numpy((pre / 255 - mean) / std)[None], torch.from_numpy((post / 255 - mean) / std)[None]
        )[0]
    expected = logits.argmax(0).numpy()
    with rasterio.open("x.tif") as ds:
        got = ds.read(1)
    valid = got != 255
    assert valid.mean() > 0.99
    changed = int((expected[valid] == 1).sum())
    assert 1000 < changed < valid.sum() // 10  # a real test: some change, not everything
    np.testing.assert_array_equal(got[valid], expected[valid])
    assert Path("x.gpkg").is_file()


# --- a good import -----------------------------------------------------------------------------


def test_import_writes_the_metadata_and_keeps_the_graph(tmp_path):
    src = export(Conv(c=4, k1=7), tmp_path / "m.onnx", c=4)
    import onnx

    proto = onnx.load(str(src))
    proto.metadata_props.add(key="author", value="me")
    proto.metadata_props.add(key=META_KEY, value="{stale}")
    onnx.save(proto, str(src))
    res = import_onnx(
        src,
        tmp_path / "out.onnx",
        GAZA,
        bands=[4, 3, 2, 1],
        normalization="0.1,0.2,0.3,0.4/0.5,0.5,0.5,0.5",
        scale=10000,
        training_gsd_m=10,
        architecture="my-unet.v2",
    )
    assert res.path == tmp_path / "out.onnx" and res.fixed_size is None and res.fixed_batch is None
    assert any("replaced the s2m-geo metadata" in c for c in res.checks)
    assert [c for c in res.checks if c.startswith("ran on")] == [
        "ran on a random 2 x 4 x 512 x 512 pair: logits 2 x 7 x 512 x 512, all finite",
        "ran on a random 2 x 4 x 256 x 256 pair: logits 2 x 7 x 256 x 256, all finite",
    ]
    om = load_onnx_model(res.path)
    d = om.meta.to_dict()
    assert d["architecture"] == "my-unet.v2" and d["config"] is None and d["training"] == {}
    assert d["bands"] == {"pre": [4, 3, 2, 1], "post": [4, 3, 2, 1]}
    assert d["normalization"] == {"mean": [0.1, 0.2, 0.3, 0.4], "std": [0.5] * 4, "scale": 10000.0}
    assert (d["tile_size"], d["default_overlap"], d["training_gsd_m"]) == (512, 64, 10.0)
    assert d["class_table"] == GAZA.to_dict()
    props = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert props["author"] == "me" and json.loads(props[META_KEY]) == d
    # the graph is unchanged: same logits as the source model
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 2, 4, 40, 40), dtype=np.float32)
    with torch.no_grad():
        ref = Conv(c=4, k1=7)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(om(a, b), ref, atol=1e-5)
    assert leftovers(tmp_path, {"m.onnx", "out.onnx"}) == []


def test_inputs_named_otherwise_are_refused_with_the_fix_then_mapped(tmp_path):
    src = export(Conv(), tmp_path / "ab.onnx", names=("image_a", "image_b"))
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "out.onnx", BINARY)
    assert "ab.onnx: ONNX inputs are ['image_a', 'image_b'], not 'pre' and 'post'" in str(err.value)
    assert "{inputs} image_a,image_b" in err.value.template and err.value.params == ("inputs",)
    assert leftovers(tmp_path, {"ab.onnx"}) == []
    with pytest.raises(InputError, match="has no input 'image_c'"):
        import_onnx(src, tmp_path / "out.onnx", BINARY, inputs=["image_a", "image_c"])
    # mapped the other way round: image_b takes pre
    res = import_onnx(src, tmp_path / "out.onnx", BINARY, inputs=["image_b", "image_a"])
    assert "(renamed to pre, post)" in res.checks[0]
    om = load_onnx_model(res.path)
    assert [i.name for i in om.session.get_inputs()] == ["pre", "post"]
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        ref = Conv()(torch.from_numpy(b), torch.from_numpy(a)).numpy()  # image_a = post, image_b = pre
    np.testing.assert_allclose(om(a, b), ref, atol=1e-5)


def test_wrong_number_of_output_channels(tmp_path):
    src = export(Conv(k1=3), tmp_path / "three.onnx")
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "out.onnx", GAZA)
    assert str(err.value) == (
        f"{src}: the model returns 3 channels but the class table 'gaza_change' has 7 classes "
        "(K+1, id 0 = no change); pass classes a table with 3 classes"
    )
    assert not (tmp_path / "out.onnx").exists()


def test_logits_at_another_resolution_are_refused(tmp_path):
    class Half(torch.nn.Module):
        def forward(self, pre, post):
            return torch.nn.functional.avg_pool2d(torch.cat([pre, post], 1)[:, :2], 2)

    src = export(Half(), tmp_path / "half.onnx")
    with pytest.raises(InputError, match=r"returns 2 x 2 x 256 x 256 logits on a random 2 x 3 x 512 x 512 pair, "):
        import_onnx(src, tmp_path / "out.onnx", BINARY)
    assert leftovers(tmp_path, {"half.onnx"}) == []


def test_fixed_size_and_batch_run_at_their_size(tmp_path):
    src = export(Conv(), tmp_path / "fixed.onnx", size=96, axes=())
    res = import_onnx(src, tmp_path / "out.onnx", BINARY)
    assert (res.fixed_size, res.fixed_batch, res.meta.tile_size, res.meta.default_overlap) == (96, 1, 96, 12)
    assert "fixed size 96 x 96: the tile size is 96 (predict cannot change it)" in res.checks
    assert "fixed batch of 1: tiles run 1 at a time" in res.checks
    assert [c for c in res.checks if c.startswith("ran on")] == [
        "ran on a random 1 x 3 x 96 x 96 pair: logits 1 x 2 x 96 x 96, all finite"
    ]
    om = load_onnx_model(res.path)
    a = np.random.default_rng(3).standard_normal((3, 3, 96, 96), dtype=np.float32)
    assert om(a, a[::-1].copy()).shape == (3, 2, 96, 96)  # batches of 3 run one tile at a time
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "other.onnx", BINARY, tile_size=128)
    assert "takes 96 x 96 tiles only, not {tile_size} 128; pass {tile_size} 96" in err.value.template


def test_predict_with_a_fixed_size_model_names_the_tile_size(tmp_path, small_scene):
    from s2m_geo.predict.pipeline import PredictOptions, predict

    src = export(Conv(), tmp_path / "fixed.onnx", size=64, axes=())
    model = import_onnx(src, tmp_path / "m.onnx", BINARY).path
    with pytest.raises(InputError) as err:
        predict(
            small_scene["pre"],
            small_scene["post"],
            tmp_path / "c.tif",
            model=model,
            options=PredictOptions(tile_size=128),
        )
    assert err.value.params == ("tile_size",) and "takes 64 x 64 tiles only" in str(err.value)


def test_non_float_input_is_refused(tmp_path):
    class Bytes(torch.nn.Module):
        def forward(self, pre, post):
            return torch.cat([pre, post], 1)[:, :2].float()

    src = export(Bytes(), tmp_path / "u8.onnx", dtype=torch.uint8)
    with pytest.raises(InputError, match=r"u8.onnx: input 'pre' is tensor\(uint8\), not float32; .*float inputs"):
        import_onnx(src, tmp_path / "out.onnx", BINARY)


def test_a_model_that_fails_on_the_random_pair_names_the_bands(tmp_path):
    # C declared dynamic, but the convolution takes 4 bands: only running it shows it
    src = export(Conv(c=4), tmp_path / "four.onnx", c=4, axes=(0, 1, 2, 3))
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "out.onnx", BINARY)
    assert err.value.template.startswith(f"{src}: fails to run on a random 2 x 3 x 512 x 512 pair (")
    assert err.value.template.endswith("; check that {bands} lists as many bands as the model takes (3 now)")
    assert leftovers(tmp_path, {"four.onnx"}) == []
    assert import_onnx(src, tmp_path / "out.onnx", BINARY, bands=[1, 2, 3, 4], normalization="none").meta.bands[
        "post"
    ] == [1, 2, 3, 4]


def test_a_fixed_band_count_is_checked_before_running(tmp_path):
    src = export(Conv(c=4), tmp_path / "four.onnx", c=4)
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "out.onnx", BINARY, bands=[1, 2, 3])
    assert str(err.value).endswith(
        "takes 4 band(s) per scene but bands 1,2,3 gives 3; pass bands with 4 band numbers, e.g. 1,2,3,4"
    )
    # without bands: 1..C
    assert import_onnx(src, tmp_path / "out.onnx", BINARY, normalization="none").meta.bands["pre"] == [1, 2, 3, 4]


def test_nan_logits_are_refused(tmp_path):
    class Log(torch.nn.Module):
        def forward(self, pre, post):
            return torch.log(torch.cat([pre, post], 1)[:, :2])

    src = export(Log(), tmp_path / "log.onnx")
    with pytest.raises(InputError, match="returns NaN or infinite logits on a random 2 x 3 x 512 x 512 pair"):
        import_onnx(src, tmp_path / "out.onnx", BINARY)


def test_output_is_never_the_input_and_must_be_onnx(tmp_path):
    src = export(Diff(), tmp_path / "m.onnx")
    before = src.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(InputError, match="m.onnx: output is the model input"):
            import_onnx(src, src, BINARY, overwrite=overwrite)
    link = tmp_path / "link.onnx"
    link.symlink_to(src)
    with pytest.raises(InputError, match="output is the model input"):
        import_onnx(src, link, BINARY, overwrite=True)
    assert src.read_bytes() == before
    with pytest.raises(InputError, match=r"output must end in .onnx .*; name it m\.onnx"):
        import_onnx(src, tmp_path / "m.bin", BINARY)
    (tmp_path / "out.onnx").write_bytes(b"keep")
    with pytest.raises(InputError, match="already exists; pass overwrite"):
        import_onnx(src, tmp_path / "out.onnx", BINARY)
    assert (tmp_path / "out.onnx").read_bytes() == b"keep"
    with pytest.raises(InputError, match="not a readable ONNX model"):
        import_onnx(tmp_path / "out.onnx", tmp_path / "x.onnx", BINARY)
    with pytest.raises(InputError, match="ONNX model not found"):
        import_onnx(tmp_path / "nope.onnx", tmp_path / "x.onnx", BINARY)
    assert leftovers(tmp_path, {"m.onnx", "link.onnx", "out.onnx"}) == []


def test_overlap_and_architecture_are_checked(tmp_path):
    src = export(Diff(), tmp_path / "m.onnx")
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "o.onnx", BINARY, tile_size=64, overlap=32)
    assert err.value.template.startswith("{overlap} 32: must be at least 0 and less than half the tile size (64)")
    with pytest.raises(InputError, match="architecture 's2m'"):
        import_onnx(src, tmp_path / "o.onnx", BINARY, architecture="s2m")
    res = import_onnx(src, tmp_path / "o.onnx", BINARY, tile_size=100)
    assert res.meta.tile_size == 100 and res.meta.default_overlap == 12
    assert any("random 2 x 3 x 128 x 128 pair" in c for c in res.checks)  # 100 runs padded to 128


def test_parse_normalization():
    assert parse_normalization("imagenet", 3) == IMAGENET
    none = parse_normalization("none", 4, scale=10000)
    assert none.mean == (0.0,) * 4 and none.std == (1.0,) * 4 and none.scale == 10000
    assert parse_normalization("0.5/0.25", 2).to_dict() == {"mean": [0.5, 0.5], "std": [0.25, 0.25], "scale": 255.0}
    assert parse_normalization(" 1,2,3/4,5,6 ", 3).std == (4.0, 5.0, 6.0)
    for bad, why in (
        ("imagenet", "gives 3 means and stds but the model reads 4 band(s)"),
        ("1,2/3", "needs as many means as stds"),
        ("0/0", "std and scale must be positive"),
        ("bogus", "not a normalisation"),
        ("1/2/3", "not a normalisation"),
    ):
        with pytest.raises(InputError) as err:
            parse_normalization(bad, 4)
        assert why in str(err.value) and "normalization" in err.value.params


def test_dynamic_sizes_are_run_at_a_second_size(tmp_path):
    class Only512(torch.nn.Module):
        """Declared dynamic, but a 512 x 512 constant makes it run at 512 only."""

        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1, 2, 512, 512))

        def forward(self, pre, post):
            return torch.cat([pre, post], 1)[:, :2] + self.bias

    src = export(Only512(), tmp_path / "only512.onnx", size=512)
    with pytest.raises(InputError) as err:
        import_onnx(src, tmp_path / "out.onnx", BINARY)
    assert err.value.template.startswith(f"{src}: fails to run on a random 2 x 3 x 256 x 256 pair (")
    assert err.value.template.endswith("; export it with fixed H and W and pass {tile_size} 512")
    assert leftovers(tmp_path, {"only512.onnx"}) == []
