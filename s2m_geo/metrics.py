"""Semantic change detection (SCD) scores: SeK, Fscd, mIoU, OA, ... (Bi-SRNet / SECOND).

Convention (as Bi-SRNet's ``fast_hist``): ``hist[pred, label]`` — rows are predictions,
columns are ground truth; class 0 is "no change", 1..K are change classes. Accumulate one
matrix over the whole evaluation set with :func:`confusion_matrix` (summing is exact) and
score it once with :func:`scd_scores`.

Definitions (Q = hist, N = ΣQ, TN = Q[0,0]):

* ``oa``: **global** overall accuracy tr(Q)/N. Bi-SRNet reports the mean of per-image
  accuracies instead; the two differ slightly on sets of unequal change content.
* ``iou_nochange`` = TN / (N − Σ Q[1:,1:]); ``iou_change`` = Σ Q[1:,1:] / (N − TN)
  (binary change vs. no change, whatever the change class); ``miou`` = their mean.
* ``kappa``: the *separated* kappa κ̂ of SeK — Cohen's kappa of Q with Q[0,0] set to 0.
  ``sek`` = κ̂ · exp(iou_change − 1).
* ``precision`` = Σ_{i≥1} Q[i,i] / (N − ΣQ[0,:]) (over pixels predicted as change),
  ``recall`` = Σ_{i≥1} Q[i,i] / (N − ΣQ[:,0]) (over pixels labelled as change),
  ``fscd`` = their harmonic mean.
* ``per_class``: for each id c in 0..K, precision Q[c,c]/ΣQ[c,:], recall Q[c,c]/ΣQ[:,c],
  F1 and IoU Q[c,c]/(ΣQ[c,:] + ΣQ[:,c] − Q[c,c]), plus ``predicted`` and ``support``
  (pixel counts in prediction and label).
* ``mf1``: macro F1 over the change classes 1..K; ``mf1_all``: macro F1 over 0..K.
  A class absent from both prediction and label is left out of these averages (as
  ``nanmean`` would); if every averaged class is absent the average is 1.0.
* For a 2×2 matrix (one change class) also ``f1`` and ``iou``: binary F1 and IoU of the
  change class (``iou`` equals ``iou_change``, ``f1`` equals ``fscd``).

Empty cases — no score is ever NaN:

* A ratio whose denominator is 0 is 1.0 when the thing it measures is absent from both
  prediction and label (nothing to find and nothing found: perfect), and 0.0 otherwise.
  Hence: no change in label and none predicted → precision = recall = fscd = 1,
  iou_change = 1, κ̂ = 1 and sek = 1. No change in label but some predicted → precision 0,
  recall 0 (no credit for a prediction that is all false alarm), fscd 0, sek 0. Change in
  label but none predicted → precision 0, recall 0, fscd 0, sek 0. Per class likewise: a
  class in the label but never predicted has precision 0 (not NaN) and F1 0.
* κ̂ with chance agreement p_e = 1 (all non-TN pixels in one diagonal cell, i.e. a perfect
  prediction of a single class) is 1.0 (Bi-SRNet's ``cal_kappa`` returns 0 there).
* An all-zero matrix (N = 0) raises ValueError: there is nothing to score.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "scd_scores"]


def _check_ids(name: str, a: np.ndarray, num_classes: int) -> None:
    if a.size == 0:
        return
    lo, hi = a.min().item(), a.max().item()
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} contains value {bad!r} outside the class ids 0..{num_classes - 1}")


def confusion_matrix(
    pred: np.ndarray, label: np.ndarray, num_classes: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """The (num_classes × num_classes) int64 matrix ``hist[pred, label]`` (rows = prediction).

    ``pred`` and ``label`` are integer class-id arrays of one shape; ``valid`` (same shape,
    bool) selects the pixels to count — values outside it are not checked, so an ignore
    value such as 255 may sit there. Any counted value outside 0..num_classes−1 raises
    ValueError naming it. One ``np.bincount`` over ``num_classes*pred + label``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    p, t = np.asarray(pred), np.asarray(label)
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} differs from label shape {t.shape}")
    for name, a in (("pred", p), ("label", t)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise ValueError(f"{name} must hold integer class ids, got dtype {a.dtype}")
    if valid is not None:
        v = np.asarray(valid)
        if v.shape != p.shape:
            raise ValueError(f"valid shape {v.shape} differs from pred shape {p.shape}")
        v = v.astype(bool, copy=False)
        p, t = p[v], t[v]
    _check_ids("pred", p, num_classes)
    _check_ids("label", t, num_classes)
    idx = p.astype(np.int64).ravel()
    idx *= num_classes
    idx += t.astype(np.int64, copy=False).ravel()
    hist = np.bincount(idx, minlength=num_classes * num_classes)
    return hist.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _ratio(num: int, den: int, empty: float) -> float:
    return num / den if den else empty


def _hmean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def _kappa(q: list[list[int]]) -> float:
    """Cohen's kappa of a count matrix (exact integer bookkeeping); see module doc for 0/0."""
    s = sum(map(sum, q))
    if s == 0:
        return 1.0  # nothing to agree or disagree on (only true negatives)
    n = len(q)
    rows = [sum(r) for r in q]
    cols = [sum(q[i][j] for i in range(n)) for j in range(n)]
    agree = sum(q[i][i] for i in range(n))
    chance = sum(r * c for r, c in zip(rows, cols))
    if chance == s * s:  # p_e = 1: one diagonal cell holds everything -> perfect agreement
        return 1.0
    po, pe = agree / s, chance / (s * s)
    return (po - pe) / (1 - pe)


def _as_counts(hist: Any) -> list[list[int]]:
    h = np.asarray(hist)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or h.shape[0] < 2:
        raise ValueError(f"hist must be a square matrix of at least 2x2, got shape {h.shape}")
    if not (np.issubdtype(h.dtype, np.integer) or np.issubdtype(h.dtype, np.floating)):
        raise ValueError(f"hist must hold counts, got dtype {h.dtype}")
    if np.issubdtype(h.dtype, np.floating):
        if not np.all(np.isfinite(h)) or np.any(h != np.round(h)):
            raise ValueError("hist must hold whole, finite pixel counts")
    if np.any(h < 0):
        raise ValueError("hist must not hold negative counts")
    q = [[int(x) for x in row] for row in h.tolist()]
    if sum(map(sum, q)) == 0:
        raise ValueError("hist is all zero: there are no pixels to score")
    return q


def scd_scores(hist: np.ndarray) -> dict[str, Any]:
    """All SCD scores of a ``hist[pred, label]`` matrix as plain Python floats (no NaN).

    Keys: ``sek, fscd, precision, recall, miou, oa, mf1, mf1_all, kappa, iou_change,
    iou_nochange, per_class`` (+ ``f1, iou`` for 2×2). See the module docstring for the
    definitions and for what each score is when its denominator is empty.
    """
    q = _as_counts(hist)
    n = len(q)
    total = sum(map(sum, q))
    pred_tot = [sum(q[i]) for i in range(n)]
    label_tot = [sum(q[i][j] for i in range(n)) for j in range(n)]
    tn = q[0][0]
    tp_bin = sum(q[i][j] for i in range(1, n) for j in range(1, n))
    pred_change = total - pred_tot[0]
    label_change = total - label_tot[0]
    sc_tp = sum(q[i][i] for i in range(1, n))

    # each IoU's denominator is 0 only when its class is absent from prediction and label
    iou_nc = _ratio(tn, total - tp_bin, 1.0)
    iou_c = _ratio(tp_bin, total - tn, 1.0)
    no_change_anywhere = pred_change == 0 and label_change == 0
    empty = 1.0 if no_change_anywhere else 0.0
    precision = _ratio(sc_tp, pred_change, empty)
    recall = _ratio(sc_tp, label_change, empty)
    fscd = _hmean(precision, recall)

    q_hat = [row[:] for row in q]
    q_hat[0][0] = 0
    kappa = _kappa(q_hat)
    sek = kappa * math.exp(iou_c - 1.0)

    per_class = []
    for c in range(n):
        absent = pred_tot[c] == 0 and label_tot[c] == 0
        e = 1.0 if absent else 0.0
        p_c = _ratio(q[c][c], pred_tot[c], e)
        r_c = _ratio(q[c][c], label_tot[c], e)
        per_class.append(
            {
                "class_id": c,
                "iou": _ratio(q[c][c], pred_tot[c] + label_tot[c] - q[c][c], e),
                "f1": _hmean(p_c, r_c),
                "precision": p_c,
                "recall": r_c,
                "predicted": pred_tot[c],
                "support": label_tot[c],
            }
        )

    def macro_f1(ids: range) -> float:
        f = [per_class[c]["f1"] for c in ids if per_class[c]["predicted"] or per_class[c]["support"]]
        return sum(f) / len(f) if f else 1.0

    out: dict[str, Any] = {
        "sek": sek,
        "fscd": fscd,
        "precision": precision,
        "recall": recall,
        "miou": (iou_nc + iou_c) / 2,
        "oa": sum(q[i][i] for i in range(n)) / total,
        "mf1": macro_f1(range(1, n)),
        "mf1_all": macro_f1(range(n)),
        "kappa": kappa,
        "iou_change": iou_c,
        "iou_nochange": iou_nc,
        "per_class": per_class,
    }
    if n == 2:
        out["f1"] = per_class[1]["f1"]
        out["iou"] = per_class[1]["iou"]
    return out
