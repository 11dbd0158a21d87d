"""SCD metrics (s2m_geo.metrics): confusion matrix and SeK / Fscd / mIoU / OA ..."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from s2m_geo.metrics import confusion_matrix, scd_scores

HIST = np.array([[900, 10, 5, 5], [20, 30, 4, 1], [10, 3, 8, 2], [5, 2, 1, 6]])

SCALARS = ("sek", "fscd", "precision", "recall", "miou", "oa", "mf1", "mf1_all", "kappa", "iou_change", "iou_nochange")


def _bisrnet_reference(hist: np.ndarray) -> dict[str, float]:
    """Bi-SRNet's SCDD_eval_all / Eval_SCD formulas, written out plainly (may give NaN)."""
    h = hist.astype(np.float64)
    n = h.sum()
    c2 = np.array([[h[0, 0], h[0, 1:].sum()], [h[1:, 0].sum(), h[1:, 1:].sum()]])
    iu = np.diag(c2) / (c2.sum(1) + c2.sum(0) - np.diag(c2))
    hn0 = h.copy()
    hn0[0, 0] = 0
    s = hn0.sum()
    po = np.trace(hn0) / s
    pe = (hn0.sum(1) * hn0.sum(0)).sum() / s**2
    kappa = (po - pe) / (1 - pe)
    pre = np.diag(h)[1:].sum() / (n - h[0, :].sum())
    rec = np.diag(h)[1:].sum() / (n - h[:, 0].sum())
    return {
        "oa": np.trace(h) / n,
        "iou_nochange": iu[0],
        "iou_change": iu[1],
        "miou": iu.mean(),
        "kappa": kappa,
        "sek": kappa * math.exp(iu[1]) / math.e,
        "precision": pre,
        "recall": rec,
        "fscd": 2 * pre * rec / (pre + rec),
    }


# ---------------------------------------------------------------- reference vector


def test_reference_vector():
    r = scd_scores(HIST)
    expected = {
        "oa": 0.932806,
        "miou": 0.725668,
        "sek": 0.079859,
        "precision": 0.478261,
        "recall": 0.571429,
        "fscd": 0.520710,
        "kappa": 0.130494,
        "iou_nochange": 0.942408,
        "iou_change": 0.508929,
    }
    for k, v in expected.items():
        assert r[k] == pytest.approx(v, abs=1e-6), k
    ref = _bisrnet_reference(HIST)
    for k, v in ref.items():
        assert r[k] == pytest.approx(v, abs=1e-12), k
    assert "f1" not in r and "iou" not in r  # only for 2x2


def test_per_class_and_mf1():
    r = scd_scores(HIST)
    pc = r["per_class"]
    assert [d["class_id"] for d in pc] == [0, 1, 2, 3]
    # class 1: diag 30, predicted (row) 55, labelled (column) 45
    assert pc[1]["precision"] == pytest.approx(30 / 55)
    assert pc[1]["recall"] == pytest.approx(30 / 45)
    assert pc[1]["iou"] == pytest.approx(30 / (55 + 45 - 30))
    assert pc[1]["f1"] == pytest.approx(2 * 30 / (55 + 45))
    assert (pc[1]["predicted"], pc[1]["support"]) == (55, 45)
    f1 = [2 * HIST[c, c] / (HIST[c, :].sum() + HIST[:, c].sum()) for c in range(4)]
    assert r["mf1"] == pytest.approx(np.mean(f1[1:]))
    assert r["mf1_all"] == pytest.approx(np.mean(f1))
    assert r["mf1"] == pytest.approx(0.472938, abs=1e-6)


def test_transpose_swaps_precision_and_recall():
    a, b = scd_scores(HIST), scd_scores(HIST.T)
    assert a["precision"] == pytest.approx(b["recall"])
    assert a["recall"] == pytest.approx(b["precision"])
    assert a["precision"] != pytest.approx(a["recall"])
    for k in ("sek", "fscd", "miou", "oa", "kappa", "iou_change", "iou_nochange", "mf1"):
        assert a[k] == pytest.approx(b[k]), k
    for ca, cb in zip(a["per_class"], b["per_class"]):
        assert ca["precision"] == pytest.approx(cb["recall"])
        assert (ca["predicted"], ca["support"]) == (cb["support"], cb["predicted"])


# ---------------------------------------------------------------- empty cases


def test_no_change_anywhere_is_perfect():
    r = scd_scores(np.array([[100, 0, 0], [0, 0, 0], [0, 0, 0]]))
    for k in SCALARS:
        assert r[k] == 1.0, k
    assert all(d["f1"] == 1.0 and d["iou"] == 1.0 for d in r["per_class"])


def test_change_predicted_but_none_in_label():
    r = scd_scores(np.array([[90, 0], [10, 0]]))  # 10 false alarms
    assert (r["precision"], r["recall"], r["fscd"]) == (0.0, 0.0, 0.0)
    assert (r["iou_change"], r["kappa"], r["sek"]) == (0.0, 0.0, 0.0)
    assert r["oa"] == pytest.approx(0.9)
    assert r["iou_nochange"] == pytest.approx(0.9)
    assert (r["f1"], r["iou"]) == (0.0, 0.0)
    assert r["mf1"] == 0.0


def test_change_in_label_but_none_predicted():
    r = scd_scores(np.array([[90, 6, 4], [0, 0, 0], [0, 0, 0]]))
    assert (r["precision"], r["recall"], r["fscd"], r["sek"]) == (0.0, 0.0, 0.0, 0.0)
    assert r["per_class"][1]["precision"] == 0.0 and r["per_class"][1]["f1"] == 0.0
    assert r["mf1"] == 0.0
    assert r["miou"] == pytest.approx(0.45)


def test_perfect_prediction_of_one_class():
    # kappa's chance agreement is 1 here (Bi-SRNet would give 0); a perfect map scores 1
    r = scd_scores(np.array([[90, 0, 0], [0, 10, 0], [0, 0, 0]]))
    for k in SCALARS:
        assert r[k] == pytest.approx(1.0), k
    r2 = scd_scores(np.diag([50, 7, 3, 11]))
    for k in SCALARS:
        assert r2[k] == pytest.approx(1.0), k


def test_all_change_no_true_negatives():
    r = scd_scores(np.array([[0, 0], [0, 25]]))
    assert r["iou_nochange"] == 1.0 and r["iou_change"] == 1.0 and r["sek"] == 1.0


def test_absent_class_left_out_of_macro_f1():
    # class 2 absent from both: mf1 is the F1 of class 1 alone
    h = np.array([[80, 5, 0], [5, 10, 0], [0, 0, 0]])
    r = scd_scores(h)
    assert r["mf1"] == pytest.approx(2 * 10 / 30)
    assert r["per_class"][2]["f1"] == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 3), dtype=np.int64),
        np.ones((1, 1)),
        np.ones((2, 3)),
        np.ones(4),
        np.array([[1, -1], [0, 3]]),
        np.array([[1.5, 0], [0, 1]]),
        np.array([[np.nan, 0], [0, 1]]),
    ],
)
def test_bad_hist(bad):
    with pytest.raises(ValueError):
        scd_scores(bad)


def test_float_counts_accepted():
    r = scd_scores(HIST.astype(np.float64))
    assert r["sek"] == pytest.approx(0.079859, abs=1e-6)


# ---------------------------------------------------------------- confusion matrix


def test_confusion_matrix_orientation_and_counts():
    pred = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.uint8)
    label = np.array([[0, 1, 2], [2, 0, 0]], dtype=np.uint8)
    h = confusion_matrix(pred, label, 3)
    assert h.dtype == np.int64
    expected = np.zeros((3, 3), dtype=np.int64)
    for p, t in zip(pred.ravel(), label.ravel()):
        expected[p, t] += 1
    np.testing.assert_array_equal(h, expected)
    assert h[1, 2] == 1  # predicted 1 where the label is 2
    assert h.sum(1).tolist() == [2, 2, 2]  # prediction histogram
    assert h.sum(0).tolist() == [3, 1, 2]  # label histogram


def test_confusion_matrix_random_against_loop():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 7, size=(37, 41))
    label = rng.integers(0, 7, size=(37, 41))
    expected = np.zeros((7, 7), dtype=np.int64)
    np.add.at(expected, (pred.ravel(), label.ravel()), 1)
    np.testing.assert_array_equal(confusion_matrix(pred, label, 7), expected)
    # accumulating halves equals the whole
    h = confusion_matrix(pred[:20], label[:20], 7) + confusion_matrix(pred[20:], label[20:], 7)
    np.testing.assert_array_equal(h, expected)


def test_confusion_matrix_valid_mask_hides_ignore_values():
    pred = np.array([0, 1, 2, 9])
    label = np.array([0, 1, 255, 1])
    valid = np.array([True, True, False, False])
    h = confusion_matrix(pred, label, 3, valid=valid)
    assert h.sum() == 2 and h[0, 0] == 1 and h[1, 1] == 1
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(pred[:3], label[:3], 3)
    with pytest.raises(ValueError, match="pred contains value 9"):
        confusion_matrix(pred, np.zeros(4, dtype=int), 3)
    with pytest.raises(ValueError, match="-2"):
        confusion_matrix(np.array([0, -2]), np.array([0, 0]), 3)
    with pytest.raises(ValueError):
        confusion_matrix(pred, label, 3, valid=valid[:2])


def test_confusion_matrix_bad_inputs():
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros(4, np.float32), np.zeros(4, int), 3)
    empty = confusion_matrix(np.zeros(0, int), np.zeros(0, int), 3)
    assert empty.shape == (3, 3) and empty.sum() == 0


def test_confusion_matrix_large_input():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 7, size=(2048, 2048), dtype=np.uint8)
    pred = label.copy()
    pred[::2] = 0
    h = confusion_matrix(pred, label, 7)
    assert h.sum() == label.size
    assert np.trace(h[1:, 1:]) == np.count_nonzero(label[1::2])


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, derandomize=True)
@given(arrays(np.int64, st.sampled_from([(2, 2), (3, 3), (7, 7)]), elements=st.integers(0, 1000)))
def test_property_scores_in_range_and_never_nan(hist):
    assume(hist.sum() > 0)
    r = scd_scores(hist)
    for k in SCALARS:
        v = r[k]
        assert isinstance(v, float) and math.isfinite(v), k
        lo = -1.0 if k in ("kappa", "sek") else 0.0
        assert lo - 1e-12 <= v <= 1.0 + 1e-12, (k, v)
    for d in r["per_class"]:
        for k in ("iou", "f1", "precision", "recall"):
            assert 0.0 <= d[k] <= 1.0 and math.isfinite(d[k])
    assert r["sek"] <= r["kappa"] + 1e-12 if r["kappa"] >= 0 else r["sek"] >= r["kappa"]
    # where Bi-SRNet's formulas are defined, they agree
    with np.errstate(all="ignore"):
        ref = _bisrnet_reference(hist)
    for k, v in ref.items():
        if math.isfinite(v):
            assert r[k] == pytest.approx(v, abs=1e-9), k
    if hist.shape == (2, 2):
        assert r["f1"] == pytest.approx(r["fscd"]) and r["iou"] == pytest.approx(r["iou_change"])
