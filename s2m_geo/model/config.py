"""S2M network hyper-parameters (torch-free, so package headers can be read without torch)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

DEFAULT_BACKBONE = "vit_small_patch16_dinov3"

#: A backbone is a timm architecture name, optionally with a pretrained tag: letters,
#: digits and ``_`` with at most one ``.tag``. Nothing that could name a hub repository
#: (``hf-hub:org/name``), a URL or a file: a model header is data (docs/security.md).
BACKBONE_NAME = re.compile(r"[a-z][a-z0-9_]{0,79}(\.[a-z0-9_]{1,40})?")

#: ``backbone_kwargs`` a header may carry, with their allowed ranges: architecture sizes and
#: regularisation, never anything timm would read as a path, a URL or code.
BACKBONE_KWARGS: dict[str, tuple[type, float, float]] = {
    "depth": (int, 1, 48),
    "embed_dim": (int, 8, 4096),
    "num_heads": (int, 1, 64),
    "mlp_ratio": (float, 0.25, 16.0),
    "drop_path_rate": (float, 0.0, 1.0),
    "drop_rate": (float, 0.0, 1.0),
    "init_values": (float, 0.0, 10.0),
    "qkv_bias": (bool, 0, 1),
    "reg_tokens": (int, 0, 16),
}


@dataclass
class S2MConfig:
    """Architecture of an :class:`~s2m_geo.model.s2m.S2MNet`.

    Everything needed to rebuild the network (but not its weights) lives here, and is
    stored in the model package header (``to_dict``/``from_dict``).

    Attributes:
        backbone: timm model name (a CNN with a 4/8/16/32 pyramid, or a patch-16 ViT such
            as ``vit_small_patch16_dinov3``); a pretrained tag (``.lvd1689m``) is allowed.
        backbone_kwargs: extra keyword arguments for ``timm.create_model`` (e.g. ``depth``,
            ``embed_dim``, ``drop_path_rate``). Must be JSON-serialisable.
        in_chans: bands per epoch.
        num_classes: K + 1 logits (id 0 = no change).
        decoder_channels: width of the per-scale fusion and of the FPN decoder.
        attn_heads: heads of the cross-epoch attention (0 disables it: conv difference only).
        attn_kv_pool: per level (strides 4, 8, 16, 32), the average-pooling factor applied to
            the keys/values of the cross-epoch attention (spatial-reduction attention). The
            default (8, 4, 1, 1) keeps full global attention at strides 16 and 32 and lets the
            fine levels attend to the other epoch at stride 32, so the cost stays linear in
            the number of fine tokens.
        vit_taps: 0-based ViT blocks tapped for the pyramid (default: 4 evenly spaced,
            e.g. [2, 5, 8, 11] for depth 12).
        vit_norm: apply the ViT's final norm to each tapped block output (as DINOv3 does
            for dense tasks).
        text_dim: dimension of the sentence embeddings (CLIP ViT-B/32: 512).
        align_heads: heads of the text-guided alignment cross-attention (training only).
        no_change_margin: ``0`` keeps the plain head. ``> 0`` anchors the head on "no
            change" by construction: every change feature is taken relative to the same
            network's output for an unchanged pair, so identical epochs give exactly zero
            change evidence, and the change-class logits sit this margin below "no change"
            until the network finds a difference (see :class:`~s2m_geo.model.s2m.S2MNet`).
    """

    backbone: str = DEFAULT_BACKBONE
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    in_chans: int = 3
    num_classes: int = 7
    decoder_channels: int = 128
    attn_heads: int = 4
    attn_kv_pool: tuple[int, int, int, int] = (8, 4, 1, 1)
    vit_taps: tuple[int, int, int, int] | None = None
    vit_norm: bool = True
    text_dim: int = 512
    align_heads: int = 4
    no_change_margin: float = 0.0

    def __post_init__(self) -> None:
        self.attn_kv_pool = tuple(int(v) for v in self.attn_kv_pool)  # type: ignore[assignment]
        if self.vit_taps is not None:
            self.vit_taps = tuple(int(v) for v in self.vit_taps)  # type: ignore[assignment]
        self.backbone_kwargs = dict(self.backbone_kwargs)

    def validate(self, source: str = "<config>") -> S2MConfig:
        """Check value ranges; raise :class:`InputError` naming ``source`` and the fix."""

        def bad(msg: str) -> InputError:
            return InputError(f"{source}: invalid S2M model config: {msg}")

        if not isinstance(self.backbone, str) or not BACKBONE_NAME.fullmatch(self.backbone):
            raise bad(
                f"'backbone' must be a timm model name such as 'resnet18' or "
                f"'vit_small_patch16_dinov3.lvd1689m', got {self.backbone!r}"
            )
        _check_backbone_kwargs(self.backbone_kwargs, bad)
        for key, (lo, hi) in _SIZES.items():
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise bad(f"'{key}' must be an integer in [{lo}, {hi}], got {v!r}")
        if self.num_classes < 2:
            raise bad("'num_classes' must be at least 2 (no change + one change class)")
        if self.attn_heads < 0 or (self.attn_heads and self.decoder_channels % self.attn_heads):
            raise bad(
                f"'decoder_channels' ({self.decoder_channels}) must be divisible by 'attn_heads' ({self.attn_heads})"
            )
        if self.align_heads < 1 or self.decoder_channels % self.align_heads:
            raise bad(
                f"'decoder_channels' ({self.decoder_channels}) must be divisible by 'align_heads' ({self.align_heads})"
            )
        if len(self.attn_kv_pool) != 4 or any(p not in (1, 2, 4, 8) for p in self.attn_kv_pool):
            raise bad(f"'attn_kv_pool' must be 4 factors from (1, 2, 4, 8), got {self.attn_kv_pool}")
        for p, s in zip(self.attn_kv_pool, (4, 8, 16, 32)):
            if p * s > 32:
                raise bad(f"'attn_kv_pool' factor {p} at stride {s} exceeds stride 32")
        m = self.no_change_margin
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not math.isfinite(m) or not 0.0 <= m <= 100.0:
            raise bad(f"'no_change_margin' must be a number in [0, 100], got {m!r}")
        if self.vit_taps is not None and (len(self.vit_taps) != 4 or not all(0 <= t < 48 for t in self.vit_taps)):
            raise bad(f"'vit_taps' must list 4 block indices (0-47), got {self.vit_taps}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["attn_kv_pool"] = list(self.attn_kv_pool)
        d["vit_taps"] = None if self.vit_taps is None else list(self.vit_taps)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<config>") -> S2MConfig:
        """Read :meth:`to_dict` output back; unknown keys are an :class:`InputError`."""
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: invalid S2M model config: expected a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(
                f"{source}: invalid S2M model config: unknown key(s) "
                f"{sorted(unknown)}; allowed: {sorted(known)} (was the model "
                f"written by a newer s2m-geo? upgrade s2m-geo)"
            )
        try:
            cfg = cls(**dict(data))
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. int(inf) in attn_kv_pool
            raise InputError(f"{source}: invalid S2M model config: {exc}") from exc
        return cfg.validate(source)


#: The network's own sizes a header may ask for: bounded, so a header cannot ask for
#: unbounded memory or work (the largest shipped models stay far below).
_SIZES = {
    "in_chans": (1, 64),
    "num_classes": (1, 255),
    "decoder_channels": (1, 4096),
    "text_dim": (1, 4096),
    "attn_heads": (0, 64),
    "align_heads": (1, 64),
}


def _check_backbone_kwargs(kwargs: Any, bad: Any) -> None:
    """Only the keys of :data:`BACKBONE_KWARGS`, each a finite value of its type and range."""
    if not isinstance(kwargs, Mapping):
        raise bad("'backbone_kwargs' must be a mapping")
    for key, value in kwargs.items():
        if key not in BACKBONE_KWARGS:
            raise bad(f"'backbone_kwargs' may hold only {sorted(BACKBONE_KWARGS)}, not {key!r}")
        kind, lo, hi = BACKBONE_KWARGS[key]
        if kind is bool:
            ok_type = isinstance(value, bool)
        elif kind is int:
            ok_type = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok_type or not math.isfinite(float(value)) or not lo <= value <= hi:
            raise bad(f"'backbone_kwargs.{key}' must be a {kind.__name__} in [{lo:g}, {hi:g}], got {value!r}")
    dim, heads = kwargs.get("embed_dim"), kwargs.get("num_heads")
    if dim is not None and heads is not None and dim % heads:
        raise bad(f"'backbone_kwargs.embed_dim' ({dim}) must be divisible by 'num_heads' ({heads})")
