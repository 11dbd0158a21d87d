"""S2M change network: siamese encoder, cross-attention difference, FPN decoder, text alignment.

This is a reconstruction from the paper's description (no reference code is published;
docs/design.md §1):

* **Encoder** -- one backbone (:func:`~s2m_geo.model.backbone.create_backbone`) applied to
  both epochs with shared weights: 4 maps per epoch at strides 4/8/16/32.
* **Per-scale cross-attention difference** (:class:`CrossAttentionDiff`) -- both epochs are
  projected to ``decoder_channels`` by a shared 1x1 conv, get a depthwise 3x3 conv position
  encoding, then each epoch attends to the other with multi-head attention over spatial
  tokens (T1 queries -> T2 keys/values and vice versa, shared weights, residual). Cost
  control: keys/values are average-pooled by ``attn_kv_pool`` (default 8, 4, 1, 1), i.e.
  full global attention at strides 16 and 32 and spatial-reduction attention (queries at
  full resolution, keys/values at stride 32) at strides 4 and 8. The result is
  ``1x1 conv(concat[A', B', |A' - B'|])`` -- the order of A', B' is kept so the network can
  tell "newly built" from "destroyed".
* **Decoder** -- FPN top-down path (x2 upsampling + add), a 3x3 conv per level, all levels
  upsampled to stride 4 and fused by a 3x3 conv: the *decoder feature* (stride 4), then a
  1x1 classifier to K + 1 logits, bilinearly upsampled x4 to the input size.
* **Training-only heads** (:meth:`S2MNet.forward_train`) -- a global visual embedding
  (mean+max pooled decoder feature -> MLP -> ``text_dim``) for the bidirectional contrastive
  loss, and the text-guided alignment module (:class:`TextAlignment`): cross-attention with
  the decoder tokens as queries and the sentence embeddings as keys/values, giving R_I, and
  the gated bridge ``F' = F + gate * W_b(R_I)`` (paper eq. 4) with ``gate`` a learned scalar
  initialised at 0, so stage 2 starts exactly at stage 1's behaviour. The inference path
  (:meth:`S2MNet.forward`) never uses text, the alignment module or the embedding head.

**No change in, no change out** (``no_change_margin > 0``, the default model's setting).
Each scale's difference feature is anchored on an unchanged pair: ``fuse(A', B', |A'-B'|)
- fuse(A', A', 0)``, which is exactly zero where the two epochs agree. The decoder output
is anchored the same way, ``dec(d) - dec(0)`` (``dec(0)`` is one extra zero sample in the
batch, so BatchNorm sees the same statistics), and the classifier has no bias. The logits
are that change feature through a bias-free 1x1 conv, with every change class shifted
``no_change_margin`` below "no change": identical epochs give logits ``(0, -m, ..., -m)``,
i.e. no change at every pixel, whatever the weights -- by construction, not by training.

Inputs of any size work: they are zero-padded bottom/right to a multiple of 32 and the
logits cropped back. All ops are channels_last friendly and exportable to ONNX.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import REDUCTIONS, Backbone, create_backbone, is_plain_vit
from .config import S2MConfig

__all__ = ["S2MConfig", "S2MNet", "S2MTrainOutput", "build_model", "CrossAttentionDiff", "TextAlignment"]

PAD_MULTIPLE = 32


class ConvBnAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )


class CrossAttention(nn.Module):
    """Multi-head attention of query map ``x`` over the tokens of map ``ctx``.

    ``kv_pool > 1`` average-pools ``ctx`` before it becomes keys/values (spatial-reduction
    attention), so the cost is ``HW * HW / kv_pool**2`` instead of ``(HW)**2``.
    """

    def __init__(self, dim: int, heads: int, kv_pool: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.pool = nn.AvgPool2d(kv_pool) if kv_pool > 1 else nn.Identity()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(self.norm_q(x.flatten(2).transpose(1, 2)))  # B, HW, C
        kv = self.kv(self.norm_kv(self.pool(ctx).flatten(2).transpose(1, 2)))
        k, v = kv.chunk(2, dim=-1)
        d = c // self.heads
        q = q.reshape(b, -1, self.heads, d).transpose(1, 2)
        k = k.reshape(b, -1, self.heads, d).transpose(1, 2)
        v = v.reshape(b, -1, self.heads, d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v)  # B, h, HW, d
        o = self.proj(o.transpose(1, 2).reshape(b, -1, c))
        return o.transpose(1, 2).reshape(b, c, h, w)


class CrossAttentionDiff(nn.Module):
    """One scale of the multi-scale cross-attention difference module (see module doc)."""

    def __init__(self, cin: int, dim: int, heads: int, kv_pool: int, anchored: bool = False) -> None:
        super().__init__()
        self.lateral = ConvBnAct(cin, dim, 1)
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.attn = CrossAttention(dim, heads, kv_pool) if heads > 0 else None
        self.fuse = ConvBnAct(3 * dim, dim, 1)
        self.anchored = anchored

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        x = self.lateral(torch.cat([a, b], 0))  # both epochs in one batch
        x = x + self.pos(x)
        if self.attn is not None:
            ctx = torch.cat([x[n:], x[:n]], 0)  # A attends to B, B attends to A
            x = x + self.attn(x, ctx)
        a2, b2 = x[:n], x[n:]
        pair = torch.cat([a2, b2, (a2 - b2).abs()], 1)
        if not self.anchored:
            return self.fuse(pair)
        # the same fuse on the unchanged pair (A', A', 0), in one batch (same BN statistics)
        still = torch.cat([a2, a2, torch.zeros_like(a2)], 1)
        y = self.fuse(torch.cat([pair, still], 0))
        return y[:n] - y[n:]


class TextAlignment(nn.Module):
    """Text-guided multimodal alignment (training only, paper eq. 4).

    ``R_I = MHA(q = LN(F) tokens, k = v = LN(W_t T))`` and ``F' = F + gate * W_b(R_I)``,
    with ``gate`` a scalar initialised at 0.
    """

    def __init__(self, dim: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.text_proj = nn.Linear(text_dim, dim)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.bridge = nn.Linear(dim, dim)  # W_b
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, feat: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``feat`` (B, C, H, W); ``text`` (B, D) or (B, S, D); ``text_mask`` (B, S) True = valid.

        Samples without any valid sentence get ``R_I = 0`` (their features pass unchanged).
        """
        if text.dim() == 2:
            text = text[:, None]
        b, c, h, w = feat.shape
        s = text.shape[1]
        d = c // self.heads
        tokens = feat.flatten(2).transpose(1, 2)  # B, HW, C
        q = self.q(self.norm_q(tokens)).reshape(b, -1, self.heads, d).transpose(1, 2)
        kv = self.kv(self.norm_kv(self.text_proj(text.to(feat.dtype))))
        k, v = (t.reshape(b, s, self.heads, d).transpose(1, 2) for t in kv.chunk(2, -1))
        mask = None
        valid = None
        if text_mask is not None:
            text_mask = text_mask.to(device=feat.device, dtype=torch.bool)
            valid = text_mask.any(1)  # B
            # rows without any sentence attend to everything, and are zeroed below
            mask = (text_mask | ~valid[:, None])[:, None, None, :]
        r = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        r = self.out(r.transpose(1, 2).reshape(b, -1, c))  # R_I
        if valid is not None:
            r = r * valid[:, None, None].to(r.dtype)
        bridged = self.bridge(r).transpose(1, 2).reshape(b, c, h, w)
        return feat + self.gate.to(feat.dtype) * bridged


class S2MTrainOutput(NamedTuple):
    """What :meth:`S2MNet.forward_train` returns."""

    logits: torch.Tensor  # (B, K+1, H, W)
    visual_embed: torch.Tensor  # (B, text_dim), not normalised (the loss L2-normalises)


class S2MNet(nn.Module):
    """Siamese change network; ``forward(pre, post)`` -> ``(B, K+1, H, W)`` logits."""

    def __init__(self, cfg: S2MConfig, pretrained_file: str | Path | None = None) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        bkw: dict[str, Any] = dict(cfg.backbone_kwargs)
        bkw.setdefault("in_chans", cfg.in_chans)
        if is_plain_vit(cfg.backbone):
            bkw.setdefault("taps", cfg.vit_taps)
            bkw.setdefault("norm", cfg.vit_norm)
        self.backbone: Backbone = create_backbone(cfg.backbone, pretrained_file, **bkw)
        dim = cfg.decoder_channels
        self.anchored = cfg.no_change_margin > 0
        self.diffs = nn.ModuleList(
            CrossAttentionDiff(c, dim, cfg.attn_heads, p, self.anchored)
            for c, p in zip(self.backbone.channels, cfg.attn_kv_pool)
        )
        self.smooth = nn.ModuleList(ConvBnAct(dim, dim, 3) for _ in REDUCTIONS)
        self.fuse = ConvBnAct(4 * dim, dim, 3)
        self.classifier = nn.Conv2d(dim, cfg.num_classes, 1, bias=not self.anchored)
        if self.anchored:  # (0, -m, ..., -m): a fixed prior, not a weight
            offset = torch.full((cfg.num_classes,), -float(cfg.no_change_margin))
            offset[0] = 0.0
            self.register_buffer("class_offset", offset.view(1, -1, 1, 1), persistent=False)
        # training-only heads
        self.embed_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, cfg.text_dim))
        self.align = TextAlignment(dim, cfg.text_dim, cfg.align_heads)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @staticmethod
    def _pad(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def forward_features(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """Decoder feature ``(B, decoder_channels, ceil32(H)/4, ceil32(W)/4)`` (padded pair)."""
        if pre.shape != post.shape:
            raise ValueError(f"pre {tuple(pre.shape)} and post {tuple(post.shape)} differ in shape")
        n = pre.shape[0]
        x = self._pad(torch.cat([pre, post], 0))  # shared weights: one batched pass
        feats = self.backbone(x)
        d = [m(f[:n], f[n:]) for m, f in zip(self.diffs, feats)]
        if not self.anchored:
            return self._decode(d)
        # dec(d) - dec(0): one zero sample rides along in the batch
        out = self._decode([torch.cat([t, torch.zeros_like(t[:1])], 0) for t in d])
        return out[:n] - out[n:]

    def _decode(self, d: list[torch.Tensor]) -> torch.Tensor:
        """FPN top-down path over the four difference maps -> decoder feature (stride 4)."""
        p = d[3]
        outs = [self.smooth[3](p)]
        for i in (2, 1, 0):
            p = d[i] + F.interpolate(p, scale_factor=2.0, mode="nearest")
            outs.insert(0, self.smooth[i](p))
        ups = [outs[0]] + [
            F.interpolate(o, scale_factor=float(2**i), mode="bilinear", align_corners=False)
            for i, o in enumerate(outs[1:], start=1)
        ]
        return self.fuse(torch.cat(ups, 1))

    def forward_head(self, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Classifier + x4 upsampling; crops the padding back to ``size`` = (H, W)."""
        logits = self.classifier(feat)
        if self.anchored:
            logits = logits + self.class_offset.to(logits.dtype)
        logits = F.interpolate(logits, scale_factor=4.0, mode="bilinear", align_corners=False)
        h, w = size
        if logits.shape[-2] != h or logits.shape[-1] != w:
            logits = logits[..., :h, :w]
        return logits

    def forward(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """Inference: ``(B, C, H, W)`` x 2 -> logits ``(B, K+1, H, W)``. Uses no text."""
        h, w = pre.shape[-2:]
        return self.forward_head(self.forward_features(pre, post), (int(h), int(w)))

    def visual_embedding(self, feat: torch.Tensor) -> torch.Tensor:
        """Global visual feature for the contrastive loss: mean+max pool -> MLP -> text_dim."""
        pooled = torch.cat([feat.mean((2, 3)), feat.amax((2, 3))], 1)
        return self.embed_head(pooled)

    def forward_train(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        text_emb: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> S2MTrainOutput:
        """Training forward.

        Stage 1: ``text_emb=None`` -- logits as :meth:`forward` plus the visual embedding.
        Stage 2: ``text_emb`` (B, D) or (B, S, D) sentence embeddings (``text_mask`` (B, S),
        True = valid) -- the decoder feature is aligned with the text (:class:`TextAlignment`)
        before the classifier. The visual embedding is taken from the visual (pre-alignment)
        feature, so what the contrastive loss teaches is available at inference.
        """
        h, w = pre.shape[-2:]
        feat = self.forward_features(pre, post)
        embed = self.visual_embedding(feat)
        if text_emb is not None:
            if text_emb.shape[0] != feat.shape[0] or text_emb.shape[-1] != self.cfg.text_dim:
                raise ValueError(
                    f"text_emb must be (B, {self.cfg.text_dim}) or "
                    f"(B, S, {self.cfg.text_dim}) with B={feat.shape[0]}, "
                    f"got {tuple(text_emb.shape)}"
                )
            feat = self.align(feat, text_emb, text_mask)
        return S2MTrainOutput(self.forward_head(feat, (int(h), int(w))), embed)

    def inference_parameters(self) -> list[nn.Parameter]:
        """Parameters the inference path uses (everything but the training-only heads)."""
        skip = {id(p) for m in (self.embed_head, self.align) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]


def build_model(cfg: S2MConfig | Mapping[str, Any], pretrained_file: str | Path | None = None) -> S2MNet:
    """The one factory: an :class:`S2MNet` from a config (dataclass or dict).

    ``pretrained_file`` is a local backbone checkpoint (e.g. DINOv3 weights); ``None`` gives
    a randomly initialised backbone. Nothing is downloaded.
    """
    if not isinstance(cfg, S2MConfig):
        cfg = S2MConfig.from_dict(cfg)
    return S2MNet(cfg, pretrained_file)
