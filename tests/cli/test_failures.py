"""Every command fails well: one line naming the file and the fix, exit 2, nothing written.

One test per row of the table in docs/errors.md.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from s2m_geo.synthetic import SceneSpec, write_scene
from s2m_geo.testing import assert_fails_well as _fails_well
from s2m_geo.testing import cli_command
from s2m_geo.testing import run_cli as run

UTM = "EPSG:32636"


def _tif(path, data, crs=UTM, transform=None, nodata=None, dtype=None, **extra):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    kw = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=dtype or data.dtype,
        **extra,
    )
    if crs:
        kw.update(crs=crs, transform=transform or from_origin(637000, 3486500, 0.5, 0.5))
    if nodata is not None:
        kw["nodata"] = nodata
    with rasterio.open(path, "w", **kw) as ds:
        ds.write(data)
    return path


@pytest.fixture()
def pair(tmp_path):
    return write_scene(tmp_path / "in", SceneSpec(size=128, seed=2))


def predict(pair_or_pre, post, out, model, *extra):
    return run("predict", pair_or_pre, post, "-o", out, "--model", model, *extra)


# --- inputs ----------------------------------------------------------------------------------


def test_missing_file(tmp_path, pair, tiny_model):
    out = tmp_path / "c.gpkg"
    _fails_well(predict(tmp_path / "nope.tif", pair["post"], out, tiny_model), "nope.tif", "not found", out=out)


def test_not_a_raster(tmp_path, pair, tiny_model):
    bad = tmp_path / "notes.tif"
    bad.write_text("these are my notes, not an image")
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], bad, out, tiny_model), "notes.tif", "not a raster", out=out)


def test_no_crs(tmp_path, pair, tiny_model):
    plain = _tif(tmp_path / "plain.tif", np.full((3, 128, 128), 100, np.uint8), crs=None)
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], plain, out, tiny_model), "plain.tif", "CRS", out=out)


def test_disjoint_footprints(tmp_path, pair, tiny_model):
    far = _tif(
        tmp_path / "far.tif", np.full((3, 128, 128), 100, np.uint8), transform=from_origin(700000, 3486500, 0.5, 0.5)
    )
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], far, out, tiny_model), "far.tif", "do not overlap", out=out)


def test_footprints_overlap_by_less_than_one_tile(tmp_path, pair, tiny_model):
    # 128 px scenes, 64 px tiles; post shifted so only 20 columns overlap
    with rasterio.open(pair["post"]) as ds:
        data = ds.read()
    shifted = _tif(tmp_path / "shifted.tif", data, transform=from_origin(637000 + 108 * 0.5, 3486500, 0.5, 0.5))
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], shifted, out, tiny_model), "shifted.tif", "less than one 64-pixel tile", out=out)


def test_band_counts_differ_without_bands(tmp_path, pair, tiny_model):
    with rasterio.open(pair["post"]) as ds:
        data = ds.read()
    # RGB + NIR (photometric MINISBLACK, so GDAL does not read band 4 as alpha)
    four = _tif(tmp_path / "four.tif", np.concatenate([data, data[:1]]), photometric="MINISBLACK")
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], four, out, tiny_model), "--bands", out=out)


def test_band_index_out_of_range(tmp_path, pair, tiny_model):
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], pair["post"], out, tiny_model, "--bands", "1,2,9"), "pre.tif", "9", out=out)


def test_all_nodata_input(tmp_path, pair, tiny_model):
    empty = _tif(tmp_path / "empty.tif", np.zeros((3, 128, 128), np.uint8), nodata=0)
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], empty, out, tiny_model), "no valid pixel", out=out)


def test_truncated_geotiff(tmp_path, tiny_model):
    scene = write_scene(tmp_path / "s", SceneSpec(size=512, seed=3))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(scene["pre"].read_bytes()[: scene["pre"].stat().st_size // 2])  # header intact
    out = tmp_path / "c.gpkg"
    _fails_well(predict(cut, scene["post"], out, tiny_model), "cut.tif", "truncated or corrupt", out=out)


def test_unsupported_dtype_complex(tmp_path, pair, tiny_model):
    cplx = _tif(tmp_path / "complex.tif", np.ones((3, 128, 128), np.complex64))
    out = tmp_path / "c.gpkg"
    _fails_well(predict(cplx, pair["post"], out, tiny_model), "complex.tif", "complex", out=out)


# --- models ------------------------------------------------------------------------------------


def test_model_of_another_architecture(tmp_path, pair, tiny_model):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_model), "pt") as f:
        meta = json.loads(f.metadata()["s2m_geo"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["architecture"] = "unet"
    other = tmp_path / "unet.safetensors"
    save_file(tensors, str(other), metadata={"s2m_geo": json.dumps(meta)})
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], pair["post"], out, other), "unet.safetensors", "architecture", out=out)


def test_model_whose_class_table_does_not_fit(tmp_path, pair, tiny_model):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_model), "pt") as f:
        meta = json.loads(f.metadata()["s2m_geo"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["class_table"]["classes"] = meta["class_table"]["classes"][:3]  # 3 classes, 7 logits
    other = tmp_path / "three.safetensors"
    save_file(tensors, str(other), metadata={"s2m_geo": json.dumps(meta)})
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], pair["post"], out, other), "three.safetensors", out=out)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_pickle_given_as_model_is_never_unpickled(tmp_path, pair, name):
    import pickle

    marker = tmp_path / "UNPICKLED"
    bad = tmp_path / name
    bad.write_bytes(pickle.dumps(_Payload(str(marker))))
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], pair["post"], out, bad), name, out=out)
    _fails_well(run("model-info", bad), name)
    _fails_well(run("export", bad, "--onnx", tmp_path / "m.onnx"), name)
    assert not marker.exists()


def test_onnx_model_with_wrong_inputs(tmp_path, pair):
    import torch

    class Two(torch.nn.Module):
        def forward(self, a, b):
            return torch.cat([a, b], 1)

    bad = tmp_path / "wrong.onnx"
    torch.onnx.export(
        Two(),
        (torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)),
        str(bad),
        input_names=["a", "b"],
        output_names=["out"],
        dynamo=False,
    )
    out = tmp_path / "c.gpkg"
    _fails_well(predict(pair["pre"], pair["post"], out, bad), "wrong.onnx", "'pre' and 'post'", out=out)


# --- outputs -----------------------------------------------------------------------------------


def test_output_exists_without_overwrite(tmp_path, pair, tiny_model):
    out = tmp_path / "c.gpkg"
    out.write_text("an analyst's earlier result")
    res = predict(pair["pre"], pair["post"], out, tiny_model)
    assert res.exit_code == 2 and "--overwrite" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert out.read_text() == "an analyst's earlier result"


@pytest.mark.parametrize("folder", ["/proc", "/nonexistent/folder"])
def test_output_folder_not_writable(tmp_path, pair, tiny_model, folder):
    res = predict(pair["pre"], pair["post"], Path(folder) / "c.gpkg", tiny_model)
    assert res.exit_code == 2 and folder in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_disk_full_writer_made_to_fail(tmp_path, pair, tiny_model, monkeypatch):
    import errno

    import s2m_geo.vector.output as vo

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "c.gpkg"))

    monkeypatch.setattr(vo, "write_layer_styles", full)
    out = tmp_path / "c.gpkg"
    res = predict(pair["pre"], pair["post"], out, tiny_model, "--raster", tmp_path / "c.tif")
    _fails_well(res, "No space left on device", out=out)
    assert not (tmp_path / "c.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.integration
def test_disk_full_on_a_tiny_tmpfs(pair, tiny_model, tiny_tmpfs):
    mnt = tiny_tmpfs("64k")
    out = mnt / "c.gpkg"
    proc = subprocess.run(
        cli_command(
            "predict", pair["pre"], pair["post"], "-o", out, "--model", tiny_model, "--probabilities", mnt / "p.tif"
        ),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("s2m-geo: error:")
    assert "Traceback" not in proc.stderr
    assert list(mnt.iterdir()) == []


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_an_output_never_overwrites_an_input(tmp_path, pair, tiny_model):
    """Rule 1: the output names are checked against the inputs (as given, through links and
    '..') before anything runs; the inputs stay as they were."""
    before = {k: _digest(pair[k]) for k in ("pre", "post")}
    link = tmp_path / "link.tif"
    link.symlink_to(pair["pre"])
    dotted = pair["post"].parent / ".." / pair["post"].parent.name / "post.tif"
    for out in (pair["pre"], link, dotted):
        res = predict(pair["pre"], pair["post"], out, tiny_model, "--overwrite")
        _fails_well(res, str(out), "--output is the", "input", "choose another output name")
    res = predict(pair["pre"], pair["post"], tmp_path / "c.gpkg", tiny_model, "--raster", pair["post"], "--overwrite")
    _fails_well(res, "--raster is the post input", out=tmp_path / "c.gpkg")
    res = predict(
        pair["pre"], pair["post"], tmp_path / "c.tif", tiny_model, "--probabilities", tiny_model, "--overwrite"
    )
    _fails_well(res, "--probabilities is the model input", out=tmp_path / "c.tif")
    assert {k: _digest(pair[k]) for k in ("pre", "post")} == before


def test_two_outputs_of_one_run_never_share_a_name(tmp_path, pair, tiny_model):
    out = tmp_path / "c.tif"
    res = predict(pair["pre"], pair["post"], out, tiny_model, "--probabilities", out)
    _fails_well(res, "--probabilities is also the --output output", out=out)
    gpkg = tmp_path / "c.gpkg"
    res = predict(
        pair["pre"],
        pair["post"],
        gpkg,
        tiny_model,
        "--raster",
        tmp_path / "x.tif",
        "--probabilities",
        tmp_path / "X.TIF",
    )
    _fails_well(res, "--probabilities is also the --raster output", out=gpkg)
    res = predict(pair["pre"], pair["post"], out, tiny_model, "--raster", tmp_path / "r.tif")
    _fails_well(res, "--raster keeps the change raster beside a vector --output", out=out)


def test_export_never_overwrites_its_model(tmp_path, tiny_model):
    import shutil

    model = Path(shutil.copy(tiny_model, tmp_path / "m.safetensors"))
    before = _digest(model)
    res = run("export", model, "--onnx", model, "--overwrite")
    _fails_well(res, "--onnx is the model input")
    assert _digest(model) == before


# --- other commands ----------------------------------------------------------------------------


def test_invalid_config_yaml(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("model: {backbone: resnet18\n")
    _fails_well(run("train", "--config", bad, "--out", tmp_path / "run"), "config.yaml", "YAML")
    assert not (tmp_path / "run").exists()


def test_evaluate_and_describe_bad_inputs(tmp_path, pair):
    _fails_well(run("evaluate", tmp_path / "none.tif", pair["label"]), "none.tif", "not found")
    text = tmp_path / "mask.tif"
    text.write_text("no")
    _fails_well(run("describe", text), "mask.tif", "not a raster")


def _label_like(pair, path, data, **kw):
    with rasterio.open(pair["label"]) as ds:
        geo = dict(crs=ds.crs, transform=ds.transform)
    geo.update(kw)
    return _tif(path, data, **geo)


def test_evaluate_scores_only_what_it_can_and_says_why_not(tmp_path, pair):
    """Rule 5/8: a float label with NaN nodata is scored without a crash; a nodata that is a
    class id, a label on no grid, fractional ids are one-line errors, never silent."""
    with rasterio.open(pair["label"]) as ds:
        label = ds.read(1)
    as_float = label.astype(np.float32)
    as_float[:8] = np.nan
    f = _label_like(pair, tmp_path / "f.tif", as_float, nodata=float("nan"), dtype="float32")
    res = run("evaluate", f, pair["label"], "--json")
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert sum(map(sum, scores["confusion_matrix"])) == label[8:].size  # the NaN rows are left out
    zero = _label_like(pair, tmp_path / "z.tif", label, nodata=0)
    _fails_well(run("evaluate", pair["label"], zero), "z.tif: declares nodata 0", "'no_change'", "-unsetnodata")
    plain = _tif(tmp_path / "plain.tif", label, crs=None)
    _fails_well(run("evaluate", pair["label"], plain), "plain.tif: has no CRS but", "georeference it")
    with rasterio.open(pair["label"]) as ds:
        east = ds.transform * rasterio.Affine.translation(50, 0)  # 50 px east: the same size, another grid
    shifted = _label_like(pair, tmp_path / "s.tif", label, transform=east)
    _fails_well(run("evaluate", pair["label"], shifted), "not on the same grid as", "predict on the label's grid")
    half = _label_like(pair, tmp_path / "h.tif", label.astype(np.float32) + 0.5, dtype="float32")
    _fails_well(run("evaluate", half, pair["label"]), f"{half}: holds fractional values (e.g. 0.5)")


def _unsorted_ifd(src: Path, dst: Path) -> Path:
    """A copy of a classic little-endian TIFF whose first IFD lists its first two tags in the
    wrong order: libtiff warns ("tags are not sorted in ascending order") and reads it."""
    import struct

    b = bytearray(src.read_bytes())
    assert b[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", b, 4)[0]
    first, second = ifd + 2, ifd + 14
    b[first:second], b[second : second + 12] = b[second : second + 12], b[first:second]
    dst.write_bytes(bytes(b))
    return dst


@pytest.mark.integration
def test_gdal_messages_of_other_threads_stay_off_stderr(tmp_path, pair, tiny_model):
    """Rule 9: GDAL's own warnings from the read-ahead threads (where rasterio's handler is
    not installed) went raw onto stderr ("Warning 1: TIFFReadDirectoryCheckOrder: …"); the
    command's stderr holds only its own lines."""
    post = _unsorted_ifd(pair["post"], tmp_path / "post.tif")
    out = tmp_path / "out" / "c.gpkg"
    out.parent.mkdir()
    proc = subprocess.run(
        cli_command("predict", pair["pre"], post, "-o", out, "--model", tiny_model, "--progress", "none"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning 1" not in proc.stderr and "ERROR 1" not in proc.stderr, proc.stderr
    assert out.exists()


def test_messages_name_the_real_culprit(tmp_path, pair, tiny_model):
    """Rule 9: a tile size alone never blames an --overlap nobody gave; a resolution in the
    wrong unit says so; a file placed by GCPs is not called 'not georeferenced'."""
    out = tmp_path / "c.tif"
    res = predict(pair["pre"], pair["post"], out, tiny_model, "--tile-size", "33")
    assert res.exit_code == 0, res.output  # the model's overlap (16) is clamped to the tile
    res = predict(
        pair["pre"], pair["post"], tmp_path / "d.tif", tiny_model, "--crs", "EPSG:4326", "--resolution", "0.5"
    )
    _fails_well(res, "--resolution 0.5: EPSG:4326 counts in degrees", "give the resolution in degrees")
    res = predict(pair["pre"], pair["post"], tmp_path / "e.tif", tiny_model, "--resolution", "1e-6")
    _fails_well(res, "--resolution 1e-06: EPSG:32636 counts in metres", "its own pixels are about 0.5")
    from rasterio.control import GroundControlPoint

    with rasterio.open(pair["post"]) as ds:
        data = ds.read()
    gcps = [GroundControlPoint(r, c, 637000 + c * 0.5, 3486500 - r * 0.5) for r, c in ((0, 0), (0, 127), (127, 0))]
    gcp = tmp_path / "gcp.tif"
    prof = dict(driver="GTiff", width=128, height=128, count=3, dtype="uint8", gcps=gcps, crs=UTM)
    with rasterio.open(gcp, "w", **prof) as ds:
        ds.write(data)
    res = predict(pair["pre"], gcp, tmp_path / "f.tif", tiny_model)
    _fails_well(res, "gcp.tif: is georeferenced by 3 ground control points (GCPs)", "gdalwarp")


def test_a_tile_far_larger_than_the_models_is_refused_before_anything_runs(tmp_path, pair, tiny_model):
    """Rule 7: the model's memory grows with the square of the tile (faster in attention):
    --tile-size 8192 for a 64-px model took 24 GB and was killed; now one line, exit 2."""
    out = tmp_path / "c.tif"
    res = predict(pair["pre"], pair["post"], out, tiny_model, "--tile-size", "8192")
    _fails_well(res, "--tile-size 8192: more than 2x the model's own tile (64)", "at most 128", out=out)
    assert predict(pair["pre"], pair["post"], out, tiny_model, "--tile-size", "128").exit_code == 0
    small = write_scene(tmp_path / "small", SceneSpec(size=96, seed=1))
    res = predict(small["pre"], small["post"], tmp_path / "s.tif", tiny_model, "--tile-size", "128")
    assert res.exit_code == 0 and "96x96 px, 1 tiles" in res.stdout, res.output  # cut to the scene


def test_world_files_that_disagree_through_the_command_line(tmp_path, pair, tiny_model):
    """Rule 5: a JPEG pair placed by world files (no CRS), post 100 px east of pre, is refused
    instead of being compared pixel by pixel."""
    with rasterio.open(pair["pre"]) as ds:
        data = ds.read()
    for name, x0 in (("a", 1000.0), ("b", 1050.0)):
        with rasterio.open(
            tmp_path / f"{name}.jpg", "w", driver="JPEG", width=128, height=128, count=3, dtype="uint8"
        ) as ds:
            ds.write(data)
        (tmp_path / f"{name}.jgw").write_text(f"0.5\n0\n0\n-0.5\n{x0 + 0.25}\n{2000 - 0.25}\n")  # pixel centres
    out = tmp_path / "c.gpkg"
    res = predict(tmp_path / "a.jpg", tmp_path / "b.jpg", out, tiny_model)
    _fails_well(res, "b.jpg: has no CRS", "places it 100 px east, 0 px south of", "gdal_edit.py -a_srs", out=out)


def test_an_onnx_model_with_a_fixed_batch_of_one_runs_at_the_default_batch_size(tmp_path, pair):
    """Rule 8: --batch-size 4 (the default) is split into the model's batches of 1."""
    import onnx

    from s2m_geo.testing import difference_onnx

    model = onnx.load(str(difference_onnx(tmp_path / "d.onnx", tile_size=64, overlap=16)))
    for v in (*model.graph.input, *model.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = 1  # replaces the symbolic 'n'
    onnx.save(model, str(tmp_path / "b1.onnx"))
    fixed = predict(pair["pre"], pair["post"], tmp_path / "b1.tif", tmp_path / "b1.onnx")
    assert fixed.exit_code == 0, fixed.output
    assert predict(pair["pre"], pair["post"], tmp_path / "d.tif", tmp_path / "d.onnx").exit_code == 0
    with rasterio.open(tmp_path / "b1.tif") as a, rasterio.open(tmp_path / "d.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_describe_a_float_mask_with_nan_nodata(tmp_path, pair):
    with rasterio.open(pair["label"]) as ds:
        label = ds.read(1).astype(np.float32)
    label[:10] = np.nan
    f = _label_like(pair, tmp_path / "nan.tif", label, nodata=float("nan"), dtype="float32")
    res = run("describe", f)
    assert res.exit_code == 0, res.output


def test_sample_data_bad_inputs(tmp_path):
    _fails_well(run("sample-data", tmp_path, "--post-crs", "EPSG:0"), "--post-crs")


def test_paths_with_spaces_and_non_ascii_work(tmp_path, tiny_model):
    folder = tmp_path / "Gaza scènes 2024 – جباليا"
    scene = write_scene(folder, SceneSpec(size=128, seed=5))
    out = folder / "changements détectés.gpkg"
    res = predict(scene["pre"], scene["post"], out, tiny_model)
    assert res.exit_code == 0, res.output
    assert out.exists()


# --- interruptions -----------------------------------------------------------------------------


def _default_sigint() -> None:
    # a shell that runs the tests in the background (no job control) starts them with SIGINT
    # ignored, and Python keeps an ignored SIGINT ignored: give the command Ctrl-C as a user has it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_cli(tmp_path, model, sig, stage):
    scene = write_scene(tmp_path / "big", SceneSpec(size=512, seed=8))
    out = tmp_path / "out" / "c.gpkg"
    out.parent.mkdir()
    cmd = cli_command(
        "predict",
        scene["pre"],
        scene["post"],
        "-o",
        out,
        "--model",
        model,
        "--raster",
        str(out.with_suffix(".tif")),
        "--batch-size",
        "1",
        "--progress",
        "json",
    )
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.time() + 120
    for line in proc.stderr:
        if line.startswith("{") and json.loads(line).get("stage") == stage:
            proc.send_signal(sig)
            break
        assert time.time() < deadline
    rest = proc.stderr.read()
    assert proc.wait(60) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert list(out.parent.iterdir()) == []
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert out.exists() and out.with_suffix(".tif").exists()


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_inference(tmp_path, tiny_model, sig):
    _interrupt_cli(tmp_path, tiny_model, sig, "infer")


def _predict_until(tmp_path, model, stage):
    """A ``predict`` subprocess (512² scene, vector output and --raster) read up to its first
    progress line of ``stage``: (process, command, output)."""
    scene = write_scene(tmp_path / "in", SceneSpec(size=512, seed=8))
    out = tmp_path / "out" / "c.gpkg"
    out.parent.mkdir(exist_ok=True)
    cmd = cli_command(
        "predict", scene["pre"], scene["post"], "-o", out, "--model", model, "--raster", out.with_suffix(".tif")
    )
    cmd += ["--batch-size", "1", "--progress", "json"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{") and json.loads(line).get("stage") == stage:
            return proc, cmd, out
    raise AssertionError(f"no {stage!r} progress line; exit {proc.wait()}")


@pytest.mark.integration
def test_kill_9_while_vectorizing_leaves_no_final_name_and_the_rerun_cleans_up(tmp_path, tiny_model):
    """Rule 2: SIGKILL runs no handler; still nothing appears under a final name (outputs are
    published together at the end), and the next run sweeps what the dead one left."""
    proc, cmd, out = _predict_until(tmp_path, tiny_model, "vectorize")
    proc.kill()
    assert proc.wait(60) == -signal.SIGKILL
    left = sorted(p.name for p in out.parent.iterdir())
    assert left and all(n.startswith(".") for n in left), left  # its lock and temporaries only
    assert ".c.gpkg.lock" in left and any(".partial." in n for n in left), left
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.gpkg", "c.qml", "c.tif"]


@pytest.mark.integration
def test_two_concurrent_runs_to_one_new_output(tmp_path, tiny_model):
    """Rule 2: the second run to an output another is writing stops at once, naming it; the
    first completes. The first is held stopped (SIGSTOP) while the second runs: no race."""
    import pyogrio

    first, cmd, out = _predict_until(tmp_path, tiny_model, "infer")
    first.send_signal(signal.SIGSTOP)
    try:
        second = subprocess.run([*cmd[:-1], "none"], capture_output=True, text=True)  # --progress none
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"s2m-geo: error: {out}: another s2m-geo run (process {first.pid}) is writing it; wait for it to "
        "finish or choose another name"
    ]
    assert first.wait(120) == 0, first.stderr.read() if first.stderr else ""
    assert {"changes", "scenes"} <= {name for name, _ in pyogrio.list_layers(out)}
    assert pyogrio.read_info(out, layer="scenes")["features"] == 1


@pytest.mark.parametrize("where", ["read", "stitch", "write", "rows", "vectors"])
def test_interrupt_during_reading_stitching_writing(tmp_path, pair, tiny_model, monkeypatch, where):
    """Rule 2: whatever stage is interrupted, no output is left under a final name (the
    rasters are published with the vectors, at the very end), and the rerun completes."""
    import s2m_geo.detect as dt
    import s2m_geo.predict.pipeline as pl
    import s2m_geo.predict.scene as sc
    import s2m_geo.predict.stitch as st

    calls = {"n": 0}

    def boom(orig):
        def wrapper(*a, **k):
            calls["n"] += 1
            if calls["n"] >= 2:
                raise KeyboardInterrupt
            return orig(*a, **k)

        return wrapper

    if where == "read":
        monkeypatch.setattr(sc.ScenePair, "read", boom(sc.ScenePair.read))
    elif where == "stitch":
        monkeypatch.setattr(st.Stitcher, "_finish", boom(st.Stitcher._finish))
    elif where == "write":
        calls["n"] = 1
        monkeypatch.setattr(pl, "_cog", boom(pl._cog))
    elif where == "rows":  # while the polygons' rows stream to the file
        calls["n"] = 1
        monkeypatch.setattr(dt.VectorOutput, "add", boom(dt.VectorOutput.add))
    else:  # after both rasters are written, while the vector layers are finished
        calls["n"] = 1
        monkeypatch.setattr(dt.VectorOutput, "finish", boom(dt.VectorOutput.finish))
    out = tmp_path / "c.gpkg"
    extra = ("--raster", tmp_path / "c.tif", "--probabilities", tmp_path / "p.tif", "--block-tiles", "1")
    res = predict(pair["pre"], pair["post"], out, tiny_model, *extra)
    assert res.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    monkeypatch.undo()
    assert predict(pair["pre"], pair["post"], out, tiny_model).exit_code == 0
