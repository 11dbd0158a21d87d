"""Model packages run with torch or, exported once and cached, with onnxruntime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio

from s2m_geo.errors import InputError
from s2m_geo.predict.pipeline import PredictOptions, predict
from s2m_geo.predict.runners import (
    OnnxChangeModelRunner,
    TorchChangeModel,
    cached_onnx,
    load_change_model,
    onnx_cache_dir,
    read_threads_for,
)


def test_auto_on_cpu_is_onnx_exported_once(tiny_model, onnx_cache):
    runner = load_change_model(tiny_model, "cpu")
    assert isinstance(runner, OnnxChangeModelRunner)
    assert runner.name == tiny_model.name  # outputs name the package, not the cache file
    assert onnx_cache_dir() == onnx_cache
    files = list(onnx_cache.glob(f"{tiny_model.stem}-*.onnx"))  # other tests' models may be there too
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    assert cached_onnx(tiny_model) == files[0] and files[0].stat().st_mtime_ns == stamp  # not exported again
    assert isinstance(load_change_model(tiny_model, "cpu", "torch"), TorchChangeModel)


def test_one_reader_feeds_a_model_on_the_cpu(tiny_model, onnx_cache):
    for runtime in ("torch", "onnx"):
        runner = load_change_model(tiny_model, "cpu", runtime)
        assert runner.on_cpu and read_threads_for(runner) == 1
    assert read_threads_for(object()) == 2  # a model that does not say where it runs


def test_an_accelerator_normalises_the_batch_on_the_device_bit_for_bit(tiny_model):
    """On a GPU the torch runner normalises a batch on the device (not in the pipeline's main
    thread): the same float32 inputs, so the same probabilities. The device path runs on the
    CPU here."""
    runner = load_change_model(tiny_model, "cpu", "torch")
    rng = np.random.default_rng(3)
    pre, post = (rng.uniform(0, 255, (2, 3, 64, 64)).astype(np.float32) for _ in range(2))
    keep = pre.copy()
    on_host = runner.probabilities(pre, post)
    host_input = runner._input(pre).numpy()
    runner.on_cpu = False  # as on an accelerator
    assert np.array_equal(runner._input(pre).numpy(), host_input)
    assert np.array_equal(pre, keep)  # the caller's batch is left as it was
    assert np.array_equal(runner.probabilities(pre, post), on_host)


def test_torch_and_onnx_give_the_same_raster(tmp_path, tiny_model, small_scene):
    out = {}
    for runtime in ("torch", "onnx"):
        out[runtime] = tmp_path / f"{runtime}.tif"
        res = predict(
            small_scene["pre"], small_scene["post"], out[runtime], tiny_model, PredictOptions(runtime=runtime)
        )
        assert res.model == tiny_model.name
    with rasterio.open(out["torch"]) as a, rasterio.open(out["onnx"]) as b:
        ca, cb = a.read(1), b.read(1)
    # float32 rounding differs between the two engines: only exact ties could flip a class
    assert (ca == cb).mean() > 0.9995
    assert len(np.unique(ca)) > 1  # the tiny random model does predict several classes here


def test_a_large_batch_on_the_cpu_runs_without_the_memory_pattern(tmp_path):
    """onnxruntime's memory pattern is dropped from the first batch of MEM_PATTERN_MAX_PIXELS
    pixels an input (far less memory, the same logits); smaller batches keep it."""
    from s2m_geo.model.export import MEM_PATTERN_MAX_PIXELS, load_onnx_model
    from s2m_geo.testing import difference_onnx

    model = load_onnx_model(difference_onnx(tmp_path / "d.onnx"))
    rng = np.random.default_rng(0)
    small = rng.normal(size=(2, 2, 3, 64, 64)).astype(np.float32)
    before = model(*small)
    assert model.mem_pattern
    side = int(np.sqrt(MEM_PATTERN_MAX_PIXELS // 4))  # 4 tiles of 512^2
    large = rng.normal(size=(2, 4, 3, side, side)).astype(np.float32)
    out = model(*large)
    assert not model.mem_pattern
    expected = 4.0 * np.abs(large[0] - large[1]).mean(axis=1)
    np.testing.assert_allclose(out[:, 1], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model(*small), before)  # the same model after the switch


def test_bad_runtime_is_refused(tiny_model):
    with pytest.raises(InputError, match="runtime tensorrt: choose one of") as exc:
        load_change_model(tiny_model, "cpu", "tensorrt")
    assert exc.value.params == ("runtime",)


@pytest.mark.integration
def test_auto_device_check_does_not_import_torch_without_a_gpu_driver():
    """Importing torch costs seconds and hundreds of MB: where no GPU driver is installed,
    'auto' knows it runs on the CPU without it."""
    code = (
        "import sys, s2m_geo.devices as d\n"
        "d.accelerator_possible = lambda: False\n"
        "from s2m_geo.predict.runners import _runs_on_cpu\n"
        "assert _runs_on_cpu('auto') and _runs_on_cpu('cpu')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_prepare_runtime_exports_only_for_onnx(tmp_path, onnx_cache):
    from s2m_geo.predict.runners import prepare_runtime
    from s2m_geo.testing import tiny_model

    pkg = tiny_model(tmp_path / "own.safetensors", seed=5)  # weights no other test exported
    prepare_runtime(pkg, "cpu", "torch")
    assert not list(onnx_cache.glob("own-*.onnx"))
    prepare_runtime(pkg, "cpu", "auto")
    assert len(list(onnx_cache.glob("own-*.onnx"))) == 1


def test_a_failed_export_is_remembered_and_auto_uses_torch(tmp_path, onnx_cache, monkeypatch):
    import s2m_geo.model
    from s2m_geo.testing import tiny_model

    pkg = tiny_model(tmp_path / "noexport.safetensors", seed=7)
    calls = []

    def failing_export(package, out, **kw):
        calls.append(package)
        raise RuntimeError("operator not supported")

    monkeypatch.setattr(s2m_geo.model, "export_onnx", failing_export)
    assert isinstance(load_change_model(pkg, "cpu"), TorchChangeModel)
    assert isinstance(load_change_model(pkg, "cpu"), TorchChangeModel)
    assert len(calls) == 1  # the second run did not try again
    notes = list(onnx_cache.glob("noexport-*.use-torch"))
    assert len(notes) == 1 and "operator not supported" in notes[0].read_text()
    with pytest.raises(InputError, match="use runtime torch"):  # asked for onnx: an error, not a fallback
        load_change_model(pkg, "cpu", "onnx")
    assert len(calls) == 2


def test_the_cached_export_is_checked_on_bounded_tiles(tmp_path, onnx_cache, monkeypatch):
    """A header's 8192-px tile must not make the export's check run the model on an 8192² pair."""
    import s2m_geo.model
    from s2m_geo.predict.runners import EXPORT_CHECK_TILE
    from s2m_geo.testing import tiny_model

    sizes = []

    def recording_export(package, out, tile_size=None, **kw):
        sizes.append(tile_size)
        raise RuntimeError("stop here")

    monkeypatch.setattr(s2m_geo.model, "export_onnx", recording_export)
    for tile in (64, 8192):
        with pytest.raises(RuntimeError, match="stop here"):
            cached_onnx(tiny_model(tmp_path / f"t{tile}.safetensors", tile_size=tile))
    assert sizes == [64, EXPORT_CHECK_TILE]
