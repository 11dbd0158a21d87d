"""Training losses (s2m_geo.train.losses): focal, Dice, Lovász-softmax, InfoNCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from s2m_geo.train.losses import (
    S2MLoss,
    SegmentationLoss,
    dice_loss,
    focal_loss,
    info_nce,
    lovasz_grad,
    lovasz_softmax,
    lovasz_softmax_flat,
)


def _batch(seed: int = 0, b: int = 2, c: int = 4, h: int = 5, w: int = 6, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    target = torch.randint(0, c, (b, h, w), generator=g)
    return logits, target


# ---------------------------------------------------------------- focal


def test_focal_gamma0_is_cross_entropy():
    logits, target = _batch()
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    target[0, :2] = 255
    assert torch.allclose(
        focal_loss(logits, target, gamma=0.0, ignore_index=255), F.cross_entropy(logits, target, ignore_index=255)
    )


def test_focal_known_values():
    # one pixel, two equal logits: p_t = 0.5 -> (1 - 0.5)^2 * ln 2
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    assert focal_loss(logits, target).item() == pytest.approx(0.25 * math.log(2), rel=1e-6)
    # general formula on random input
    logits, target = _batch(3)
    p = F.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    expected = (-((1 - p) ** 2) * p.log()).mean()
    assert torch.allclose(focal_loss(logits, target, gamma=2.0), expected)
    assert focal_loss(logits, target, gamma=2.0) < focal_loss(logits, target, gamma=0.0)


def test_all_ignored_gives_zero_with_graph():
    logits, target = _batch()
    logits.requires_grad_(True)
    target[:] = 255
    total, parts = SegmentationLoss(ignore_index=255)(logits, target)
    assert total.item() == 0.0 and all(v.item() == 0.0 for v in parts.values())
    total.backward()
    assert torch.all(logits.grad == 0)


# ---------------------------------------------------------------- dice


def test_dice_known_values():
    logits = torch.zeros(1, 2, 1, 2)  # every pixel p = (0.5, 0.5)
    # only class 0 present: inter 1, cardinality 1 + 2 -> 1 - 2/3
    assert dice_loss(logits, torch.tensor([[[0, 0]]])).item() == pytest.approx(1 / 3)
    # both present: each class inter 0.5, cardinality 1 + 1 -> 1 - 1/2
    assert dice_loss(logits, torch.tensor([[[0, 1]]])).item() == pytest.approx(0.5)
    # ignored pixel drops out
    assert dice_loss(logits, torch.tensor([[[0, 9]]]), ignore_index=9).item() == pytest.approx(1 / 3)


def test_dice_perfect_is_zero():
    _, target = _batch(1)
    logits = 50.0 * F.one_hot(target, 4).permute(0, 3, 1, 2).float()
    assert dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    # a completely wrong prediction approaches 1
    wrong = 50.0 * F.one_hot((target + 1) % 4, 4).permute(0, 3, 1, 2).float()
    assert dice_loss(wrong, target).item() == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- Lovász


def _lovasz_bruteforce(probas: torch.Tensor, labels: torch.Tensor, classes: str = "present") -> float:
    """Lovász extension of the Jaccard set loss, evaluated from the set function itself."""
    p, c = probas.shape
    vals = []
    for k in range(c):
        fg = {i for i in range(p) if labels[i] == k}
        if classes == "present" and not fg:
            continue
        err = [abs((1.0 if i in fg else 0.0) - probas[i, k].item()) for i in range(p)]
        order = sorted(range(p), key=lambda i: -err[i])

        def jaccard_loss(mistakes: set[int], fg: set[int] = fg) -> float:
            union = fg | mistakes
            return 1.0 - len(fg - mistakes) / len(union) if union else 0.0

        total, chosen, prev = 0.0, set(), 0.0
        for i in order:
            chosen.add(i)
            cur = jaccard_loss(chosen)
            total += err[i] * (cur - prev)
            prev = cur
        vals.append(total)
    return sum(vals) / len(vals) if vals else 0.0


def test_lovasz_hand_computed():
    probas = torch.tensor([[0.4, 0.6], [0.8, 0.2]])
    labels = torch.tensor([0, 0])
    # class 0: errors (0.6, 0.2), Jaccard loss of {1} = 1/2, of {1,2} = 1 -> 0.6*0.5 + 0.2*0.5
    assert lovasz_softmax_flat(probas, labels).item() == pytest.approx(0.4)
    # class 1 (absent): any mistake gives Jaccard loss 1 -> 0.6 * 1 + 0.2 * 0 = 0.6
    assert lovasz_softmax_flat(probas, labels, classes="all").item() == pytest.approx(0.5)
    assert lovasz_softmax_flat(probas, labels, classes=[1]).item() == pytest.approx(0.6)
    assert lovasz_grad(torch.tensor([1.0, 1.0])).tolist() == [0.5, 0.5]
    assert lovasz_grad(torch.tensor([0.0, 0.0])).tolist() == [1.0, 0.0]


def test_lovasz_perfect_is_exactly_zero():
    labels = torch.tensor([0, 2, 1, 1, 2, 0])
    probas = F.one_hot(labels, 3).float()
    assert lovasz_softmax_flat(probas, labels).item() == 0.0
    assert lovasz_softmax_flat(probas, labels, classes="all").item() == 0.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_matches_bruteforce(seed, classes):
    g = torch.Generator().manual_seed(seed)
    probas = F.softmax(torch.randn(9, 4, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, 3, (9,), generator=g)  # class 3 never present
    got = lovasz_softmax_flat(probas, labels, classes=classes).item()
    assert got == pytest.approx(_lovasz_bruteforce(probas, labels, classes), abs=1e-12)


def test_lovasz_logits_api_and_ignore():
    logits, target = _batch(4)
    probas = F.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.allclose(lovasz_softmax(logits, target), lovasz_softmax_flat(probas, target.reshape(-1)))
    target[1] = 255
    keep = target.reshape(-1) != 255
    assert torch.allclose(
        lovasz_softmax(logits, target, ignore_index=255), lovasz_softmax_flat(probas[keep], target.reshape(-1)[keep])
    )
    with pytest.raises(ValueError):
        lovasz_softmax_flat(probas, target.reshape(-1).clamp(0, 3), classes="some")


# ---------------------------------------------------------------- gradients


def test_gradcheck_float64():
    logits, target = _batch(5, b=1, c=3, h=2, w=3, dtype=torch.float64)
    logits.requires_grad_(True)
    for fn in (lambda x: focal_loss(x, target), lambda x: dice_loss(x, target), lambda x: lovasz_softmax(x, target)):
        assert torch.autograd.gradcheck(fn, (logits,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_gradients_finite(scale):
    logits, target = _batch(6)
    logits = (logits * scale).requires_grad_(True)
    target[0, 0, 0] = 255
    total, parts = SegmentationLoss(ignore_index=255)(logits, target)
    total.backward()
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in parts.values())
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert torch.all(logits.grad[0, :, 0, 0] == 0)  # the ignored pixel gets no gradient


def test_perfect_prediction_is_minimal():
    _, target = _batch(7)
    onehot = F.one_hot(target, 4).permute(0, 3, 1, 2).float()
    loss = SegmentationLoss()
    perfect, parts = loss(30.0 * onehot, target)
    assert perfect.item() < 1e-4 and all(v.item() >= 0 for v in parts.values())
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        noisy = 30.0 * onehot + 8.0 * torch.randn(onehot.shape, generator=g)
        assert loss(noisy, target)[0].item() > perfect.item()
    assert loss(3.0 * onehot, target)[0].item() > perfect.item()  # less confident
    assert loss(torch.zeros_like(onehot), target)[0].item() > loss(3.0 * onehot, target)[0].item()


def test_segmentation_loss_weights():
    logits, target = _batch(8)
    total, parts = SegmentationLoss()(logits, target)
    assert set(parts) == {"focal", "dice", "lovasz"}
    assert total.item() == pytest.approx(
        0.4 * parts["focal"].item() + 0.3 * parts["dice"].item() + 0.3 * parts["lovasz"].item(), rel=1e-6
    )
    only_dice, _ = SegmentationLoss(0.0, 1.0, 0.0)(logits, target)
    assert only_dice.item() == pytest.approx(dice_loss(logits, target).item())
    with pytest.raises(ValueError):
        SegmentationLoss()(logits, target[:, :2])


# ---------------------------------------------------------------- InfoNCE


def _pairs(seed: int = 0, b: int = 8, d: int = 16):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(b, d, generator=g)
    visual = text + 0.3 * torch.randn(b, d, generator=g)
    return visual, text


def test_info_nce_matches_clip_loss_formula():
    v, t = _pairs()
    vn, tn = F.normalize(v, dim=1), F.normalize(t, dim=1)
    logits = vn @ tn.T / 0.7
    labels = torch.arange(len(v))
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(info_nce(v, t), expected)
    assert torch.allclose(info_nce(3.0 * v, 0.5 * t), expected)  # L2-normalised


def test_info_nce_symmetric_and_matched_lower():
    v, t = _pairs(1)
    assert torch.allclose(info_nce(v, t), info_nce(t, v))
    matched = info_nce(v, t)
    for seed in range(5):
        perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(seed))
        if torch.equal(perm, torch.arange(len(t))):
            continue
        assert info_nce(v, t[perm]) > matched
    assert info_nce(v, t, tau=0.07) < matched  # sharper temperature, well-aligned pairs


def test_info_nce_exact_duplicates_equal_multi_positive():
    # samples 0 and 1 share a sentence (equal text embeddings)
    a, b_ = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    text = torch.stack([a, a, b_])
    tau = 0.5
    visual = torch.stack([a, a, b_])
    # logits rows 0,1 = [2, 2, 0], row 2 = [0, 0, 2]; both directions are equal here
    l01 = -math.log(math.exp(2) / (2 * math.exp(2) + 1))
    l2 = -math.log(math.exp(2) / (math.exp(2) + 2))
    expected = (2 * l01 + l2) / 3
    assert info_nce(visual, text, tau=tau).item() == pytest.approx(expected, rel=1e-6)
    ids = torch.tensor([4, 4, 9])
    # for exact duplicates arange-CE and multi-positive CE coincide, value and gradient
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 2, generator=g, requires_grad=True)
    plain = info_nce(v, text, tau=tau)
    (g_plain,) = torch.autograd.grad(plain, v)
    multi = info_nce(v, text, tau=tau, text_ids=ids)
    (g_multi,) = torch.autograd.grad(multi, v)
    assert torch.allclose(plain, multi) and torch.allclose(g_plain, g_multi)


def test_info_nce_multi_positive_ids():
    # two different sentences with the same meaning (ids 4, 4) and one other
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    visual = text.clone()
    tau = 1.0
    logits = text @ text.T  # unit vectors already
    target = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    i2t = -(target * logits.log_softmax(1)).sum(1).mean()
    t2i = -(target * logits.T.log_softmax(1)).sum(1).mean()
    got = info_nce(visual, text, tau=tau, text_ids=torch.tensor([4, 4, 9]))
    assert got.item() == pytest.approx(((i2t + t2i) / 2).item(), rel=1e-6)
    # row 0 by hand: logits [1, .6, 0] -> -(0.5 log s0 + 0.5 log s1)
    z = math.exp(1) + math.exp(0.6) + 1
    row0 = -(0.5 * (1 - math.log(z)) + 0.5 * (0.6 - math.log(z)))
    assert (-(target[0] * logits[0].log_softmax(0)).sum()).item() == pytest.approx(row0, rel=1e-6)
    # treating them as negatives (no ids) is a different loss
    assert info_nce(visual, text, tau=tau).item() != pytest.approx(got.item(), rel=1e-3)


def test_info_nce_errors_and_grad():
    v, t = _pairs(2)
    with pytest.raises(ValueError):
        info_nce(v, t[:, :3])
    with pytest.raises(ValueError):
        info_nce(v, t, tau=0.0)
    with pytest.raises(ValueError):
        info_nce(v, t, text_ids=torch.arange(3))
    v.requires_grad_(True)
    info_nce(v, t).backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


# ---------------------------------------------------------------- S2M total


def test_s2m_loss_total():
    logits, target = _batch(9)
    v, t = _pairs(3, b=2)
    seg, _ = SegmentationLoss()(logits, target)
    loss = S2MLoss()
    total, parts = loss(logits, target)
    assert torch.allclose(total, seg) and "contrastive" not in parts
    assert torch.allclose(parts["seg"], seg)
    total, parts = loss(logits, target, visual=v, text=t)
    assert torch.allclose(total, seg + 0.5 * info_nce(v, t))
    assert torch.allclose(parts["contrastive"], info_nce(v, t))
    total2, _ = S2MLoss(contrastive_weight=2.0, tau=0.1)(logits, target, visual=v, text=t)
    assert torch.allclose(total2, seg + 2.0 * info_nce(v, t, tau=0.1))
    with pytest.raises(ValueError):
        loss(logits, target, text=t)
