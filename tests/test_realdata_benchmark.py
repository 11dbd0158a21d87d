"""The pure parts of benchmarks/realdata.py (Otsu, binary scoring, CVA, pseudo-change
perturbations), and its baselines on one real LEVIR pair."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("realdata_benchmark", ROOT / "benchmarks" / "realdata.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


rb = _load()


def test_otsu_separates_the_modes_of_a_bimodal_array():
    rng = np.random.default_rng(0)
    low, high = rng.normal(10, 1, 5000), rng.normal(50, 2, 2000)
    t = rb.otsu_threshold(np.concatenate([low, high]))
    assert low.max() < t < high.min()
    assert rb.otsu_threshold(np.full(10, 3.0)) == 3.0  # constant input: no split


def test_binary_scores_of_a_known_confusion_are_exact():
    hist = np.array([[88, 4], [2, 6]])  # hist[pred, label]: tn 88, fn 4, fp 2, tp 6
    s = rb.binary_scores(hist)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (6, 2, 4, 88)
    assert s["precision"] == pytest.approx(0.75)
    assert s["recall"] == pytest.approx(0.6)
    assert s["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s["iou"] == pytest.approx(0.5)


def test_binary_confusion_and_class_raster_decoding():
    classes = np.array([[0, 1, 6], [255, 0, 2]], np.uint8)
    label = np.array([[0, 1, 0], [1, 1, 1]], bool)
    changed, valid = rb.binary_from_classes(classes)
    assert changed.tolist() == [[False, True, True], [False, False, True]]
    assert valid.tolist() == [[True, True, True], [False, True, True]]
    h = rb.binary_confusion(changed, label, valid)
    assert h.tolist() == [[1, 1], [1, 2]]  # the nodata pixel is not counted
    s = rb.binary_scores(h)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)


def test_cva_identical_input_flags_nothing_and_finds_a_real_change():
    rng = np.random.default_rng(1)
    pre = rng.uniform(0, 255, (3, 40, 40))
    valid = np.ones((40, 40), bool)
    assert not rb.cva_change(pre, pre.copy(), valid).any()
    post = pre + rng.normal(0, 1, pre.shape)
    post[:, 10:20, 10:20] += 150  # a strong change
    changed = rb.cva_change(pre, post, valid)
    assert changed[10:20, 10:20].mean() > 0.9
    assert changed.mean() < 0.2
    valid[:5] = False
    assert not rb.cva_change(pre, post, valid)[:5].any()  # nothing outside the valid pixels


def test_cva_ignores_a_linear_radiometric_change():
    rng = np.random.default_rng(2)
    pre = rng.uniform(0, 255, (3, 30, 30))
    mag = rb.cva_magnitude(pre, 1.1 * pre + 7, np.ones((30, 30), bool))
    assert mag.max() < 1e-9


def _image(seed: int = 3):
    rng = np.random.default_rng(seed)
    x = np.zeros((3, 32, 32))
    x[:, :, 16:] = 200
    x += rng.normal(0, 3, x.shape)
    return np.clip(x, 0, 255), np.ones((32, 32), bool)


def test_pseudo_change_perturbations_do_what_they_say():
    x, valid = _image()
    rng = rb.perturbation_rng(0, "img", "radiometric")
    r = rb.radiometric(x, rng, 255.0)
    assert r.shape == x.shape and not np.allclose(r, x)
    assert np.abs(r - x).max() < 0.25 * 255  # gain 0.9-1.1, bias 3 %, gamma 0.9-1.1: a mild change
    h = rb.haze(x, 255.0)
    assert np.allclose(h, 0.8 * x + 0.2 * 0.8 * 255)
    b = rb.blur(x, valid)
    assert b[:, :, 10:22].std() < x[:, :, 10:22].std()  # the edge is smoother
    assert b.mean() == pytest.approx(x.mean(), abs=1.0)
    s = rb.misregister(x, valid)
    # half a pixel down and right: the column at the edge becomes half way between its neighbours
    assert s[0, 5, 16] == pytest.approx((x[0, 5, 15] + x[0, 5, 16] + x[0, 4, 15] + x[0, 4, 16]) / 4)
    for kind in rb.PERTURBATIONS:
        assert rb.perturb(x, valid, kind, rb.perturbation_rng(0, "img", kind), 255.0).shape == x.shape
    with pytest.raises(ValueError):
        rb.perturb(x, valid, "snow", rng, 255.0)


def test_perturbations_are_deterministic_and_keep_nodata_out():
    x, valid = _image()
    a = rb.perturb(x, valid, "combined", rb.perturbation_rng(7, "set/img", "combined"), 255.0)
    b = rb.perturb(x, valid, "combined", rb.perturbation_rng(7, "set/img", "combined"), 255.0)
    assert np.array_equal(a, b)
    x[:, :4] = 0
    valid[:4] = False
    y = rb.blur(x, valid)
    assert y[:, 4].mean() > 50  # the zeros under nodata are not blended in
    q = rb.quantize(y, valid, "uint8", 0)
    assert q.dtype == np.uint8 and (q[:, :4] == 0).all() and (q[:, 4:] >= 1).all()


@pytest.mark.realdata
def test_baselines_on_one_levir_pair(realdata, tmp_path):
    root = realdata / "changeformer-levir-dsifn-samples"
    if not (root / "samples_LEVIR").is_dir():
        pytest.skip("LEVIR samples not in realdata")
    cat = rb.discover(realdata, ["levir"], {}, ucm_sample=0, identical_per_set=1, pc_per_set=1)
    pair = cat.pairs["levir"][0]
    results = rb.run(
        rb.Catalogue(pairs={"levir": [pair]}, images={"levir": cat.images["levir"]}, pseudo=cat.pseudo),
        [],
        tmp_path,
        pc_crop=128,
    )
    everything, cva = results
    h = everything.pooled()
    assert h.sum() == 256 * 256 and h[0].sum() == 0  # every pixel flagged
    assert everything.to_dict()["pooled"]["recall"] == 1.0
    label = rb.read_label(pair.label)
    assert everything.to_dict()["pooled"]["precision"] == pytest.approx(label.mean())
    s = cva.to_dict()
    assert 0 < s["pooled"]["f1"] < 1 and cva.pooled().sum() == 256 * 256
    assert s["identical"]["all"]["flagged"] == 0 and s["identical"]["all"]["images"] == 1
    assert everything.to_dict()["identical"]["all"]["percent"] == 100.0
    assert set(s["pseudo_change"]["kinds"]) == set(rb.PERTURBATIONS)
    assert 0 <= s["pseudo_change"]["all"]["percent"] < 100


def test_skips_cleanly_without_realdata(tmp_path, capsys):
    assert rb.main(["--shared", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out


def test_select_keeps_only_named_pairs_and_images():
    rd = rb
    pre = rd._img("airchange", "A/szada_1", Path("a.png"), (1, 2, 3))
    held = rd._img("airchange", "A/tiszadob_2", Path("b.png"), (1, 2, 3))
    cat = rd.Catalogue(
        {
            "airchange": [
                rd.PairSpec("airchange", "szada_1", pre, pre, Path("l.png")),
                rd.PairSpec("airchange", "tiszadob_2", held, held, Path("m.png")),
            ]
        },
        {"airchange": [pre, held]},
        [pre, held],
    )
    out = rd.select(cat, ["tiszadob"])
    assert [p.name for p in out.pairs["airchange"]] == ["tiszadob_2"]
    assert out.images["airchange"] == [held] and out.pseudo == [held]


def test_model_arguments_name_the_default_too(tmp_path):
    from s2m_geo.predict.runners import default_model_path

    pkg = tmp_path / "m.safetensors"
    pkg.write_bytes(b"x")
    assert rb.parse_models(["mine=default"]) == [("mine", default_model_path())]
    assert rb.parse_models(["default"])[0][1] == default_model_path()
    assert rb.parse_models([f"a={pkg}", str(pkg)]) == [("a", pkg), ("m", pkg)]
    with pytest.raises(SystemExit, match="not found"):
        rb.parse_models(["x=nowhere.safetensors"])
