"""Frozen CLIP text encoder (open_clip) for stage-2 training: sentences -> unit vectors.

Only the text tower of the CLIP model is built (open_clip's ``_build_text_tower``; the
visual tower, ~88 M parameters for ViT-B-32, is never created). Its weights come from a
local full CLIP checkpoint (``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors``
/ a ``.pt`` state dict; the ``visual.*`` tensors are skipped) or from a text-only state
dict. Files are read with safetensors or ``torch.load(weights_only=True)``, nothing is
downloaded. The tokenizer is open_clip's bundled BPE.

Mind the activation: OpenAI's original weights need ``model_name="ViT-B-32-quickgelu"``;
LAION/DataComp weights use plain ``ViT-B-32``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "ViT-B-32"

__all__ = ["TextEncoder", "DEFAULT_TEXT_MODEL"]


def _text_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the text-tower tensors of a full CLIP (or CustomTextCLIP) state dict."""
    if any(k.startswith("text.") for k in sd):          # CustomTextCLIP layout
        return {k[5:]: v for k, v in sd.items() if k.startswith("text.")}
    return {k: v for k, v in sd.items()
            if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias")}


class TextEncoder(nn.Module):
    """Frozen open_clip text tower with an in-memory sentence -> embedding cache.

    Args:
        model_name: open_clip model config (default ``ViT-B-32``, 512-d embeddings).
        checkpoint: local weights file; ``None`` gives random weights (tests only -- a loud
            warning says the embeddings are meaningless). A missing file is an InputError.
        device: where the tower runs.
        text_cfg: overrides of the config's ``text_cfg`` (e.g. ``{"width": 64, "layers": 2,
            "heads": 2}`` for a tiny test tower).
        embed_dim: override of the output dimension.
        batch_size: sentences per forward pass.
    """

    def __init__(self, model_name: str = DEFAULT_TEXT_MODEL, checkpoint: str | Path | None = None,
                 device: str | torch.device = "cpu", text_cfg: dict[str, Any] | None = None,
                 embed_dim: int | None = None, batch_size: int = 256) -> None:
        super().__init__()
        import open_clip
        from open_clip.model import _build_text_tower

        if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
            raise InputError(f"{checkpoint}: CLIP text-encoder checkpoint not found; put the "
                             f"open_clip '{model_name}' weights (.safetensors/.bin/.pt) there "
                             f"or pass the right path (nothing is downloaded)")
        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            raise InputError(f"{model_name}: unknown open_clip model; pick one of "
                             f"open_clip.list_models(), e.g. {DEFAULT_TEXT_MODEL}")
        tcfg = dict(cfg["text_cfg"])
        tcfg.update(text_cfg or {})
        if tcfg.get("hf_model_name"):
            raise InputError(f"{model_name}: Hugging Face text towers are not supported; "
                             f"use a CLIP model with a native text transformer (e.g. ViT-B-32)")
        self.model_name = model_name
        self.embed_dim = int(embed_dim or cfg["embed_dim"])
        self.tower = _build_text_tower(self.embed_dim, tcfg,
                                       quick_gelu=bool(cfg.get("quick_gelu", False)))
        self.context_length = int(tcfg.get("context_length", 77))
        self.checkpoint = None if checkpoint is None else str(Path(checkpoint).expanduser())
        if self.checkpoint is not None:
            self._load(self.checkpoint)
        else:
            msg = (f"TextEncoder('{model_name}') has RANDOM weights: its sentence embeddings "
                   f"are meaningless. Pass checkpoint=<local CLIP weights> for real training.")
            warnings.warn(msg, UserWarning, stacklevel=2)
            log.warning(msg)
        self.tokenizer = open_clip.get_tokenizer(model_name, context_length=self.context_length)
        self.batch_size = batch_size
        self.tower.requires_grad_(False)
        self.tower.eval()
        self.to(device)
        self._cache: dict[str, torch.Tensor] = {}
        self.num_encoded = 0  # sentences actually run through the tower (cache misses)

    def _load(self, path: str) -> None:
        from open_clip.factory import load_state_dict

        try:
            sd = load_state_dict(path, device="cpu", weights_only=True)
        except Exception as exc:  # corrupt file, or a pickle that weights_only refuses
            detail = " ".join(str(exc).split())[:200]
            raise InputError(f"{path}: cannot read CLIP weights ({type(exc).__name__}: "
                             f"{detail}); give a safetensors or plain state-dict "
                             f"checkpoint") from exc
        sd = _text_state_dict(dict(sd))
        try:
            self.tower.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise InputError(f"{path}: these weights do not fit the '{self.model_name}' text "
                             f"tower ({detail}); pick the matching model name") from exc

    def train(self, mode: bool = True) -> "TextEncoder":
        """The tower stays in eval mode (frozen)."""
        super().train(False)
        return self

    @property
    def device(self) -> torch.device:
        return self.tower.token_embedding.weight.device

    @torch.no_grad()
    def _encode_uncached(self, sentences: Sequence[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(sentences), self.batch_size):
            ids = self.tokenizer(list(sentences[i:i + self.batch_size])).to(self.device)
            out.append(F.normalize(self.tower(ids).float(), dim=-1))
        self.num_encoded += len(sentences)
        return torch.cat(out)

    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        """``(B, embed_dim)`` L2-normalised embeddings, no grad, cached per sentence."""
        if isinstance(sentences, str):
            sentences = [sentences]
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        if missing:
            for s, e in zip(missing, self._encode_uncached(missing)):
                self._cache[s] = e
        if not sentences:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.stack([self._cache[s] for s in sentences])

    def forward(self, sentences: Sequence[str]) -> torch.Tensor:
        return self.encode(sentences)

    def clear_cache(self) -> None:
        self._cache.clear()
