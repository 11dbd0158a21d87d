"""Losses for S2M training: focal + Dice + Lovász-softmax segmentation loss and InfoNCE.

Shapes: ``logits`` (B, C, *spatial) raw scores over C = K+1 classes, ``target`` (B, *spatial)
int64 class ids. ``ignore_index`` marks target pixels that no loss sees.

* :func:`focal_loss` — softmax focal loss −(1−p_t)^γ log p_t (Lin et al. 2017), mean over
  the non-ignored pixels. γ = 0 is cross entropy. (smp's multiclass FocalLoss is a
  one-vs-rest *sigmoid* focal loss, which is a different function.)
* :func:`dice_loss` — multi-class soft Dice on softmax probabilities, intersections and
  cardinalities summed over the whole batch per class (as smp's DiceLoss). Only classes
  present in the batch target contribute (smp zeroes absent ones too); unlike smp, the mean
  is over the present classes, not over all C, so the loss stays in [0, 1] whatever the
  number of classes in a batch.
* :func:`lovasz_softmax` — Lovász-softmax (Berman, Rannen Triki, Blaschko, "The Lovász-Softmax
  loss", CVPR 2018; reference code bermanmaxim/LovaszSoftmax, MIT licence), reimplemented
  from the algorithm: per class, sort the errors |fg − p| in decreasing order and take the
  dot product with the gradient of the Lovász extension of the Jaccard loss.
  ``classes='present'`` averages over classes present in the target (default).
* :class:`SegmentationLoss` — 0.4·focal + 0.3·Dice + 0.3·Lovász (weights configurable).
* :func:`info_nce` — symmetric InfoNCE between visual and text embeddings with a fixed
  temperature τ = 0.7; optional multi-positive targets (``text_ids``).
* :class:`S2MLoss` — segmentation + 0.5·InfoNCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "focal_loss",
    "dice_loss",
    "lovasz_grad",
    "lovasz_softmax_flat",
    "lovasz_softmax",
    "SegmentationLoss",
    "info_nce",
    "S2MLoss",
]

Classes = Literal["present", "all"] | Sequence[int]


def _flatten(logits: Tensor, target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """(P, C) logits and (P,) labels of the pixels that count."""
    if logits.dim() < 2:
        raise ValueError(f"logits must be (B, C, ...), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not fit logits "
            f"{tuple(logits.shape)}; expected (B, ...) without the class axis"
        )
    c = logits.shape[1]
    flat = logits.movedim(1, -1).reshape(-1, c)
    labels = target.reshape(-1).long()
    if ignore_index is not None:
        keep = labels != ignore_index
        flat, labels = flat[keep], labels[keep]
    return flat, labels


def _compute_dtype(x: Tensor) -> Tensor:
    """Half-precision inputs (AMP) are computed in float32; float32/float64 are kept."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _zero(logits: Tensor) -> Tensor:
    """A 0 that keeps the graph (for batches where every pixel is ignored)."""
    return logits.sum() * 0.0


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, ignore_index: int | None = None) -> Tensor:
    """Softmax focal loss, mean over non-ignored pixels (0 when every pixel is ignored)."""
    flat, labels = _flatten(logits, target, ignore_index)
    if labels.numel() == 0:
        return _zero(logits)
    logp_t = F.log_softmax(_compute_dtype(flat), dim=1).gather(1, labels[:, None]).squeeze(1)
    if gamma == 0:
        return -logp_t.mean()
    p_t = logp_t.exp()
    return (-(1.0 - p_t).clamp_min(0.0).pow(gamma) * logp_t).mean()


def dice_loss(
    logits: Tensor, target: Tensor, ignore_index: int | None = None, smooth: float = 0.0, eps: float = 1e-7
) -> Tensor:
    """Soft multi-class Dice loss 1 − 2|P∩Y|/(|P|+|Y|) averaged over classes present in ``target``."""
    flat, labels = _flatten(logits, target, ignore_index)
    if labels.numel() == 0:
        return _zero(logits)
    probs = F.softmax(_compute_dtype(flat), dim=1)
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    inter = (probs * onehot).sum(0)
    card = (probs + onehot).sum(0)
    score = (2.0 * inter + smooth) / (card + smooth).clamp_min(eps)
    present = onehot.sum(0) > 0
    return (1.0 - score)[present].mean()


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted decreasingly.

    ``gt_sorted`` holds the 0/1 foreground indicator in the order of the sorted errors.
    (Berman et al. 2018, Alg. 1; equation (9) of the paper.)
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax_flat(probas: Tensor, labels: Tensor, classes: Classes = "present") -> Tensor:
    """Lovász-softmax of (P, C) probabilities against (P,) labels.

    ``classes``: ``'present'`` (classes in ``labels``), ``'all'`` or a list of ids; the result
    is the mean over those classes (0 when there is none).
    """
    if probas.numel() == 0:
        return probas.sum() * 0.0
    c = probas.shape[1]
    ids = range(c) if isinstance(classes, str) else [int(k) for k in classes]
    if isinstance(classes, str) and classes not in ("all", "present"):
        raise ValueError(f"classes must be 'present', 'all' or a list of ids, got {classes!r}")
    losses = []
    for k in ids:
        fg = (labels == k).to(probas.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    if not losses:
        return probas.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_softmax(
    logits: Tensor, target: Tensor, ignore_index: int | None = None, classes: Classes = "present"
) -> Tensor:
    """Lovász-softmax loss of raw ``logits`` (softmax applied here), all pixels of the batch pooled."""
    flat, labels = _flatten(logits, target, ignore_index)
    if labels.numel() == 0:
        return _zero(logits)
    return lovasz_softmax_flat(F.softmax(_compute_dtype(flat), dim=1), labels, classes)


class SegmentationLoss(nn.Module):
    """``focal_weight``·focal + ``dice_weight``·Dice + ``lovasz_weight``·Lovász-softmax.

    ``forward(logits, target)`` returns ``(total, parts)``; ``parts`` maps ``focal``,
    ``dice`` and ``lovasz`` to their unweighted values, detached (for logging).
    """

    def __init__(
        self,
        focal_weight: float = 0.4,
        dice_weight: float = 0.3,
        lovasz_weight: float = 0.3,
        gamma: float = 2.0,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        self.focal_weight, self.dice_weight, self.lovasz_weight = focal_weight, dice_weight, lovasz_weight
        self.gamma = gamma
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts = {
            "focal": focal_loss(logits, target, self.gamma, self.ignore_index),
            "dice": dice_loss(logits, target, self.ignore_index),
            "lovasz": lovasz_softmax(logits, target, self.ignore_index),
        }
        total = (
            self.focal_weight * parts["focal"] + self.dice_weight * parts["dice"] + self.lovasz_weight * parts["lovasz"]
        )
        return total, {k: v.detach() for k, v in parts.items()}


def info_nce(visual: Tensor, text: Tensor, tau: float = 0.7, text_ids: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE between (B, D) visual and (B, D) text embeddings.

    Both are L2-normalised; logits = v·tᵀ/τ. The loss is the mean of the image→text and
    text→image cross entropies against ``arange(B)`` — open_clip's ClipLoss with a fixed
    temperature.

    ``text_ids`` (B,) marks positives: samples with equal ids are positives of each other
    and the target of each row is its positive mask normalised to sum 1. Use it when
    different sentences mean the same thing (e.g. one quadruple set written with different
    templates). Exact duplicate sentences need no ids: when two text embeddings are equal
    their logit columns (rows) are equal too, and CE against ``arange`` then has exactly the
    value and gradient of the multi-positive loss (each duplicate pair contributes
    −log p_i − log p_j either way), so passing ids for them changes nothing.
    """
    if visual.dim() != 2 or visual.shape != text.shape:
        raise ValueError(f"visual {tuple(visual.shape)} and text {tuple(text.shape)} must both be (B, D)")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    b = visual.shape[0]
    pos = None
    if text_ids is not None:
        ids = text_ids.reshape(-1)
        if ids.numel() != b:
            raise ValueError(f"text_ids has {ids.numel()} entries for a batch of {b}")
        pos = ids[:, None] == ids[None, :]
    v = F.normalize(_compute_dtype(visual), dim=1)
    t = F.normalize(_compute_dtype(text), dim=1).to(v.dtype)
    logits = v @ t.T / tau
    if pos is None or bool(pos.sum() == b):  # every sample its own only positive
        labels = torch.arange(b, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    target = pos.to(logits.dtype)
    target = target / target.sum(1, keepdim=True)  # pos is symmetric: same for both directions
    i2t = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    t2i = -(target * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return 0.5 * (i2t + t2i)


class S2MLoss(nn.Module):
    """Segmentation loss + ``contrastive_weight``·InfoNCE (τ = ``tau``).

    ``forward(logits, target, visual=None, text=None, text_ids=None)`` returns
    ``(total, parts)``: ``parts`` holds the segmentation parts, ``seg`` and, when text is
    given, ``contrastive`` (all detached). Without ``text`` the contrastive term is skipped
    (the ``contrastive`` key is then absent).
    """

    def __init__(
        self, seg_loss: SegmentationLoss | None = None, contrastive_weight: float = 0.5, tau: float = 0.7
    ) -> None:
        super().__init__()
        self.seg_loss = seg_loss if seg_loss is not None else SegmentationLoss()
        self.contrastive_weight = contrastive_weight
        self.tau = tau

    def forward(
        self,
        logits: Tensor,
        target: Tensor,
        visual: Tensor | None = None,
        text: Tensor | None = None,
        text_ids: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        seg, parts = self.seg_loss(logits, target)
        parts = dict(parts, seg=seg.detach())
        if text is None:
            return seg, parts
        if visual is None:
            raise ValueError("text embeddings given without visual embeddings")
        con = info_nce(visual, text, self.tau, text_ids)
        parts["contrastive"] = con.detach()
        return seg + self.contrastive_weight * con, parts
