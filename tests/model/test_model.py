"""Backbone factory, S2M network and CLIP text encoder (CPU, tiny configs, random weights)."""

from __future__ import annotations

import time

import pytest
import torch

from s2m_geo.classes import load_class_table
from s2m_geo.errors import InputError
from s2m_geo.model import S2MConfig, S2MNet, TextEncoder, build_model, create_backbone, evenly_spaced_taps

TINY_VIT = dict(depth=4, embed_dim=64, num_heads=2)
K1 = load_class_table("gaza_change").num_classes


def tiny_cfg(backbone: str = "vit_small_patch16_dinov3", **kw) -> S2MConfig:
    bkw = TINY_VIT if backbone == "vit_small_patch16_dinov3" else {}
    return S2MConfig(
        backbone=backbone,
        backbone_kwargs=dict(bkw),
        num_classes=K1,
        decoder_channels=32,
        attn_heads=2,
        align_heads=2,
        text_dim=48,
        **kw,
    )


def seeded_model(cfg: S2MConfig, seed: int = 0) -> S2MNet:
    torch.manual_seed(seed)
    return build_model(cfg)


def pair(b: int = 2, h: int = 64, w: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g), torch.randn(b, 3, h, w, generator=g)


@pytest.fixture(scope="module", params=["resnet18", "vit_small_patch16_dinov3"])
def model(request) -> S2MNet:
    return seeded_model(tiny_cfg(request.param)).eval()


@pytest.fixture(scope="module")
def vit_model() -> S2MNet:
    return seeded_model(tiny_cfg()).eval()


# ---------------------------------------------------------------- backbone


def test_evenly_spaced_taps():
    assert evenly_spaced_taps(12) == [2, 5, 8, 11]
    assert evenly_spaced_taps(24) == [5, 11, 17, 23]
    assert evenly_spaced_taps(4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        evenly_spaced_taps(3)


@pytest.mark.parametrize("name,kwargs", [("resnet18", {}), ("vit_small_patch16_dinov3", TINY_VIT)])
def test_backbone_pyramid(name, kwargs):
    torch.manual_seed(0)
    bb = create_backbone(name, **kwargs)
    assert len(bb.channels) == 4 and bb.reductions == [4, 8, 16, 32]
    feats = bb(torch.randn(2, 3, 64, 64))
    assert [f.shape[1] for f in feats] == bb.channels
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    if name.startswith("vit"):
        assert bb.taps == [0, 1, 2, 3]
        assert bb.channels == [16, 32, 64, 64]


def test_vit_backbone_pads_to_patch_multiple():
    torch.manual_seed(0)
    bb = create_backbone("vit_small_patch16_dinov3", **TINY_VIT)
    feats = bb(torch.randn(1, 3, 72, 88))
    assert [tuple(f.shape[2:]) for f in feats] == [(18, 22), (9, 11), (5, 6), (3, 3)]


def test_missing_pretrained_file_is_input_error(tmp_path):
    missing = tmp_path / "dinov3_vits16.safetensors"
    with pytest.raises(InputError, match="dinov3_vits16.safetensors.*not found"):
        create_backbone("vit_small_patch16_dinov3", pretrained_file=missing, **TINY_VIT)
    with pytest.raises(InputError, match=str(missing)):
        build_model(tiny_cfg("resnet18"), pretrained_file=missing)


def test_pretrained_file_is_loaded_locally(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    src = timm.create_model("vit_small_patch16_dinov3", pretrained=False, num_classes=0, **TINY_VIT)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    torch.manual_seed(4)
    bb = create_backbone("vit_small_patch16_dinov3", pretrained_file=path, **TINY_VIT)
    assert torch.equal(bb.model.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert torch.equal(bb.model.blocks[3].mlp.fc2.weight, src.blocks[3].mlp.fc2.weight)
    # a checkpoint of another shape is a clear error naming the file
    torch.manual_seed(5)
    with pytest.raises(InputError, match="vit.safetensors"):
        create_backbone("vit_small_patch16_dinov3", pretrained_file=path, depth=4, embed_dim=32, num_heads=2)


def test_cnn_pretrained_file_is_loaded_and_checked(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    src = timm.create_model("resnet18", pretrained=False)  # full model, with its fc head
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    bb = create_backbone("resnet18", pretrained_file=path)
    assert torch.equal(bb.model.conv1.weight, src.conv1.weight)
    assert torch.equal(bb.model.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    # timm loads feature models non-strictly; a checkpoint of another network is caught
    wrong = tmp_path / "vit.safetensors"
    vit = timm.create_model("vit_small_patch16_dinov3", pretrained=False, num_classes=0, **TINY_VIT)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(wrong))
    with pytest.raises(InputError, match="vit.safetensors: these weights do not fit backbone 'resnet18'"):
        create_backbone("resnet18", pretrained_file=wrong)


# ---------------------------------------------------------------- network


def test_forward_shape(model):
    pre, post = pair()
    with torch.no_grad():
        logits = model(pre, post)
    assert logits.shape == (2, K1, 64, 64)
    assert torch.isfinite(logits).all()


def test_non_multiple_of_32_input(model):
    pre, post = pair(1, 72, 88)
    with torch.no_grad():
        logits = model(pre, post)
    assert logits.shape == (1, K1, 72, 88)
    # the kept region does not depend on how much padding there is (zero padding = same pixels)
    pre2 = torch.nn.functional.pad(pre, (0, 8, 0, 24))
    post2 = torch.nn.functional.pad(post, (0, 8, 0, 24))
    with torch.no_grad():
        padded = model(pre2, post2)
    torch.testing.assert_close(padded[..., :72, :88], logits, atol=1e-5, rtol=1e-5)


def test_forward_train_stage1_and_stage2(vit_model):
    model = vit_model
    pre, post = pair()
    with torch.no_grad():
        ref = model(pre, post)
        out1 = model.forward_train(pre, post)
        text = torch.nn.functional.normalize(torch.randn(2, 3, 48), dim=-1)
        mask = torch.tensor([[True, True, False], [False, False, False]])
        out2 = model.forward_train(pre, post, text, mask)
        out3 = model.forward_train(pre, post, text[:, 0])
    assert out1.logits.shape == (2, K1, 64, 64) and out1.visual_embed.shape == (2, 48)
    assert out2.visual_embed.shape == (2, 48)
    torch.testing.assert_close(out1.logits, ref)
    # gate starts at 0: stage 2 begins exactly where stage 1 ended
    assert model.align.gate.item() == 0.0
    torch.testing.assert_close(out2.logits, out1.logits, atol=0, rtol=0)
    torch.testing.assert_close(out3.logits, out1.logits, atol=0, rtol=0)
    with pytest.raises(ValueError, match="text_emb"):
        model.forward_train(pre, post, torch.randn(2, 512))


def test_gradients_reach_alignment_module():
    model = seeded_model(tiny_cfg()).train()
    pre, post = pair()
    text = torch.nn.functional.normalize(torch.randn(2, 2, 48), dim=-1)
    target = torch.randint(0, K1, (2, 64, 64), generator=torch.Generator().manual_seed(0))

    out = model.forward_train(pre, post, text)
    loss = torch.nn.functional.cross_entropy(out.logits, target) + out.visual_embed.pow(2).mean()
    loss.backward()
    assert model.align.gate.grad is not None and model.align.gate.grad.abs().item() > 0
    assert model.embed_head[0].weight.grad.abs().sum() > 0
    assert model.backbone.model.patch_embed.proj.weight.grad.abs().sum() > 0

    model.zero_grad()
    with torch.no_grad():
        model.align.gate.fill_(0.5)
    out = model.forward_train(pre, post, text)
    torch.nn.functional.cross_entropy(out.logits, target).backward()
    for p in (
        model.align.q.weight,
        model.align.kv.weight,
        model.align.text_proj.weight,
        model.align.out.weight,
        model.align.bridge.weight,
    ):
        assert p.grad is not None and p.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.allclose(model.forward_train(pre, post, text).logits, model.forward_train(pre, post).logits)


def test_inference_does_not_use_text_modules():
    model = seeded_model(tiny_cfg()).eval()
    pre, post = pair()
    with torch.no_grad():
        before = model(pre, post)
        for p in list(model.align.parameters()) + list(model.embed_head.parameters()):
            p.add_(torch.randn_like(p))
        model.align.gate.fill_(3.0)
        after = model(pre, post)
    assert torch.equal(before, after)
    n_inf = sum(p.numel() for p in model.inference_parameters())
    assert 0 < n_inf < sum(p.numel() for p in model.parameters())


def test_determinism_with_seed():
    a, b = seeded_model(tiny_cfg(), 7).eval(), seeded_model(tiny_cfg(), 7).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    pre, post = pair()
    with torch.no_grad():
        assert torch.equal(a(pre, post), b(pre, post))
        c = seeded_model(tiny_cfg(), 8).eval()
        assert not torch.equal(a(pre, post), c(pre, post))


def test_channels_last(vit_model):
    pre, post = pair()
    with torch.no_grad():
        ref = vit_model(pre, post)
        m = vit_model.to(memory_format=torch.channels_last)
        got = m(pre.contiguous(memory_format=torch.channels_last), post.contiguous(memory_format=torch.channels_last))
        vit_model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_pre_post_order_matters(vit_model):
    pre, post = pair()
    with torch.no_grad():
        assert not torch.allclose(vit_model(pre, post), vit_model(post, pre))


def test_config_round_trip_and_validation():
    cfg = tiny_cfg(vit_taps=(0, 1, 2, 3))
    d = cfg.to_dict()
    assert S2MConfig.from_dict(d) == cfg
    assert build_model(d).cfg == cfg
    with pytest.raises(InputError, match="unknown key"):
        S2MConfig.from_dict({**d, "decoder": 3})
    with pytest.raises(InputError, match="divisible"):
        S2MConfig.from_dict({**d, "attn_heads": 3})


# ---------------------------------------------------------------- text encoder


TINY_TEXT = dict(text_cfg=dict(width=64, layers=2, heads=2), embed_dim=48)


@pytest.fixture(scope="module")
def text_encoder() -> TextEncoder:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        return TextEncoder(**TINY_TEXT)


def test_text_encoder_unit_vectors_and_cache(text_encoder, monkeypatch):
    te = text_encoder
    te.clear_cache()
    before = te.num_encoded
    sents = [
        "There are several destroyed buildings in the northeast region.",
        "There is a single newly built greenhouse in the center.",
        "There are multiple destroyed agricultural lands in the south region.",
    ]
    e = te.encode(sents)
    assert e.shape == (3, 48) and not e.requires_grad
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert not torch.allclose(e[0], e[1])
    assert te.num_encoded == before + 3

    def boom(*a, **k):
        raise AssertionError("cached sentence was re-encoded")

    monkeypatch.setattr(te, "_encode_uncached", boom)
    e2 = te.encode([sents[2], sents[0], sents[2]])
    assert torch.equal(e2, e[[2, 0, 2]])
    assert te.num_encoded == before + 3


def test_text_encoder_loads_local_checkpoint(text_encoder, tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in text_encoder.tower.state_dict().items()}
    sd["visual.conv1.weight"] = torch.zeros(2, 3)  # a full CLIP file: visual tower skipped
    sd["logit_scale"] = torch.ones(())
    path = tmp_path / "clip.safetensors"
    save_file(sd, str(path))
    torch.manual_seed(123)
    te2 = TextEncoder(checkpoint=path, **TINY_TEXT)
    sents = ["There is a single destroyed building in the west region."]
    torch.testing.assert_close(te2.encode(sents), text_encoder.encode(sents))
    with pytest.raises(InputError, match="clip_missing.bin.*not found"):
        TextEncoder(checkpoint=tmp_path / "clip_missing.bin", **TINY_TEXT)


# ---------------------------------------------------------------- real size (slow)


@pytest.mark.slow
def test_vit_small_dinov3_real_size_forward_backward_512():
    torch.manual_seed(0)
    cfg = S2MConfig(backbone="vit_small_patch16_dinov3", num_classes=K1)
    model = build_model(cfg).train()
    assert model.backbone.taps == [2, 5, 8, 11]
    n = sum(p.numel() for p in model.parameters())
    n_bb = sum(p.numel() for p in model.backbone.model.parameters())
    pre, post = pair(1, 512, 512)
    text = torch.nn.functional.normalize(torch.randn(1, 2, 512), dim=-1)
    t0 = time.perf_counter()
    out = model.forward_train(pre, post, text)
    t1 = time.perf_counter()
    loss = out.logits.logsumexp(1).mean() + out.visual_embed.pow(2).mean()
    loss.backward()
    t2 = time.perf_counter()
    print(
        f"\nS2MNet ViT-S/16: {n / 1e6:.2f} M params ({n_bb / 1e6:.2f} M backbone); "
        f"512x512 train forward {t1 - t0:.2f} s, backward {t2 - t1:.2f} s"
    )
    assert out.logits.shape == (1, K1, 512, 512) and out.visual_embed.shape == (1, 512)
    assert 21e6 < n_bb < 22.5e6
    assert model.backbone.model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        y = model(pre, post)
        print(f"512x512 inference forward {time.perf_counter() - t0:.2f} s")
    assert y.shape == (1, K1, 512, 512) and torch.isfinite(y).all()


@pytest.mark.slow
def test_text_encoder_matches_open_clip_full_model(tmp_path):
    """The text-tower-only route gives open_clip's own encode_text for a full CLIP file."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    te = TextEncoder("ViT-B-32", checkpoint=path)
    assert sum(p.numel() for p in te.parameters()) < 70e6  # no visual tower
    sents = [
        "There are several destroyed buildings in the northeast region.",
        "There is a single newly built greenhouse in the center.",
    ]
    tok = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        ref = clip.encode_text(tok(sents), normalize=True)
    got = te.encode(sents)
    assert got.shape == (2, 512)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_only_registered_timm_architectures_are_built():
    """A name that passes the header's syntax but is no timm architecture is refused by name,
    before timm could look anywhere for it."""
    with pytest.raises(InputError, match="backbone 'nope_model': not a timm architecture"):
        create_backbone("nope_model")
