"""Training configuration (YAML) for ``s2m-geo train``.

A config names the class table, the network (an :class:`~s2m_geo.model.S2MConfig`), local
pretrained weights, the data and the two-stage schedule. Relative paths are relative to the
config file. See ``configs/s2m_small_cpu.yaml`` for a complete example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..model.normalization import Normalization

_TOP = {"seed", "classes", "model", "pretrained_backbone", "text_encoder", "data", "train"}
_TEXT = {"name", "checkpoint", "text_cfg", "embed_dim"}
_DATA = {"tile_size", "stride", "bands", "post_bands", "normalization", "train", "val"}
_TRAIN = {
    "batch_size",
    "lr",
    "weight_decay",
    "stage1_epochs",
    "stage2_epochs",
    "device",
    "num_workers",
    "amp",
    "grad_clip",
    "loss",
    "max_steps_per_epoch",
    "lr_schedule",
    "backbone_lr",
}
_LOSS = {"focal", "dice", "lovasz", "contrastive", "tau", "gamma"}
_DEFAULT_LOSS = {"focal": 0.4, "dice": 0.3, "lovasz": 0.3, "contrastive": 0.5, "tau": 0.7, "gamma": 2.0}
_SOURCE = {"folder", "scenes", "synthetic", "realmix"}
_REALMIX = {"images", "count", "seed", "size"}


@dataclass
class TrainConfig:
    """A parsed, validated training config."""

    path: Path
    seed: int = 0
    classes: str = "gaza_change"
    model: dict[str, Any] = field(default_factory=dict)
    pretrained_backbone: Path | str | None = None  # a file, or "packaged" (from a wheel)
    text_encoder: dict[str, Any] = field(default_factory=lambda: {"name": "ViT-B-32"})
    tile_size: int = 256
    stride: int | None = None
    bands: list[int] = field(default_factory=lambda: [1, 2, 3])
    post_bands: list[int] | None = None
    normalization: dict[str, Any] | None = None
    train_sources: list[dict[str, Any]] = field(default_factory=list)
    val_sources: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.05
    stage1_epochs: int = 10
    stage2_epochs: int = 5
    device: str = "auto"
    num_workers: int = 0
    amp: bool = True
    grad_clip: float | None = 1.0
    max_steps_per_epoch: int | None = None
    lr_schedule: str = "constant"  # or "cosine": per stage, from lr down to 0
    backbone_lr: float | None = None  # None: the backbone trains at lr like the rest
    loss: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_LOSS))

    def to_dict(self) -> dict[str, Any]:
        """What goes into the package's training summary."""
        return {
            "config_file": str(self.path),
            "seed": self.seed,
            "classes": self.classes,
            "model": self.model,
            "tile_size": self.tile_size,
            "bands": self.bands,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "stage1_epochs": self.stage1_epochs,
            "stage2_epochs": self.stage2_epochs,
            "max_steps_per_epoch": self.max_steps_per_epoch,
            "lr_schedule": self.lr_schedule,
            "backbone_lr": self.backbone_lr,
            "loss": self.loss,
            "text_encoder": {k: (str(v) if isinstance(v, Path) else v) for k, v in self.text_encoder.items()},
            "train_sources": _jsonable(self.train_sources),
            "val_sources": _jsonable(self.val_sources),
        }


def _jsonable(x: Any) -> Any:
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, Mapping):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _backbone_weights(value: Any, rel: Any) -> Path | str | None:
    """``pretrained_backbone``: a local file (relative to the config) or ``packaged``."""
    if not value:
        return None
    return "packaged" if str(value) == "packaged" else rel(value)


class _Reader:
    """Checks the parts of one config file; its errors name the file."""

    def __init__(self, path: Path) -> None:
        self.path, self.base = path, path.parent

    def check(self, d: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
        if d is None:
            return {}
        if not isinstance(d, Mapping):
            raise InputError(f"{self.path}: '{where}' must be a mapping")
        unknown = set(d) - allowed
        if unknown:
            raise InputError(f"{self.path}: unknown key(s) {sorted(unknown)} in '{where}'; allowed: {sorted(allowed)}")
        return d

    def rel(self, p: Any) -> Path:
        """A path from the config: relative ones are relative to the config's folder."""
        q = Path(str(p)).expanduser()
        return q if q.is_absolute() else self.base / q

    def sources(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        items = data.get(key) or []
        if not isinstance(items, list):
            raise InputError(f"{self.path}: 'data.{key}' must be a list of sources")
        out = []
        for i, item in enumerate(items):
            item = self.check(item, _SOURCE, f"data.{key}[{i}]")
            if len(item) != 1:
                raise InputError(f"{self.path}: data.{key}[{i}] must have exactly one of {sorted(_SOURCE)}")
            kind, value = next(iter(item.items()))
            out.append(self.source(kind, value, f"data.{key}[{i}]"))
        return out

    def source(self, kind: str, value: Any, where: str) -> dict[str, Any]:
        """One data source, its paths made absolute."""
        if kind == "folder":
            return {"folder": self.rel(value)}
        if kind == "scenes":
            if not isinstance(value, list):
                raise InputError(f"{self.path}: {where}.scenes must be a list of {{pre, post, label}}")
            return {
                "scenes": [
                    {k: self.rel(v) if k in ("pre", "post", "label") else v for k, v in s.items()} for s in value
                ]
            }
        if kind == "realmix":  # real single-date tiles with composited changes
            value = self.check(value, _REALMIX, f"{where}.realmix")
            if "images" not in value:
                raise InputError(
                    f"{self.path}: {where}.realmix needs 'images' (a folder or a list of "
                    f"folders of RGB images) and optionally 'count', 'seed', 'size'"
                )
            # the folders are checked when the data is built, like 'folder' sources, so a
            # config parses (and documents itself) on a machine without the imagery
            imgs = value["images"] if isinstance(value["images"], list) else [value["images"]]
            return {
                "realmix": {
                    "images": [self.rel(p) for p in imgs],
                    "count": int(value.get("count", 1000)),
                    "seed": int(value.get("seed", 0)),
                    "size": int(value.get("size", 256)),
                }
            }
        if not isinstance(value, Mapping) or "seeds" not in value:
            raise InputError(f"{self.path}: {where}.synthetic needs 'seeds' (and optionally 'size')")
        return {"synthetic": {"seeds": [int(s) for s in value["seeds"]], "size": int(value.get("size", 1024))}}


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config; errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found; check the path")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
    if not isinstance(raw, Mapping):
        raise InputError(f"{path}: a training config must be a YAML mapping")
    r = _Reader(path)
    check, rel = r.check, r.rel
    top = check(raw, _TOP, "top level")
    text = dict(check(top.get("text_encoder"), _TEXT, "text_encoder"))
    if text.get("checkpoint"):
        text["checkpoint"] = rel(text["checkpoint"])
    text.setdefault("name", "ViT-B-32")
    data = check(top.get("data"), _DATA, "data")
    tr = check(top.get("train"), _TRAIN, "train")
    loss = dict(_DEFAULT_LOSS)
    loss.update(check(tr.get("loss"), _LOSS, "train.loss"))

    def sources(key: str) -> list[dict[str, Any]]:
        return r.sources(data, key)

    try:
        cfg = TrainConfig(
            path=path,
            seed=int(top.get("seed", 0)),
            classes=str(top.get("classes", "gaza_change")),
            model=dict(top.get("model") or {}),
            pretrained_backbone=_backbone_weights(top.get("pretrained_backbone"), rel),
            text_encoder=text,
            tile_size=int(data.get("tile_size", 256)),
            stride=int(data["stride"]) if data.get("stride") else None,
            bands=[int(b) for b in data.get("bands", [1, 2, 3])],
            post_bands=[int(b) for b in data["post_bands"]] if data.get("post_bands") else None,
            normalization=data.get("normalization"),
            train_sources=sources("train"),
            val_sources=sources("val"),
            batch_size=int(tr.get("batch_size", 8)),
            lr=float(tr.get("lr", 1e-4)),
            weight_decay=float(tr.get("weight_decay", 0.05)),
            stage1_epochs=int(tr.get("stage1_epochs", 10)),
            stage2_epochs=int(tr.get("stage2_epochs", 5)),
            device=str(tr.get("device", "auto")),
            num_workers=int(tr.get("num_workers", 0)),
            amp=bool(tr.get("amp", True)),
            grad_clip=float(tr["grad_clip"]) if tr.get("grad_clip") else None,
            max_steps_per_epoch=int(tr["max_steps_per_epoch"]) if tr.get("max_steps_per_epoch") else None,
            lr_schedule=str(tr.get("lr_schedule", "constant")),
            backbone_lr=float(tr["backbone_lr"]) if tr.get("backbone_lr") is not None else None,
            loss={k: float(v) for k, v in loss.items()},
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: bad value in the config ({exc}); fix it") from None
    _check_values(cfg)
    return cfg


def _check_values(cfg: TrainConfig) -> None:
    """Ranges and choices of a parsed config (InputError naming the file)."""
    path = cfg.path
    if not cfg.train_sources:
        raise InputError(f"{path}: 'data.train' lists no training data; add a folder, scenes or synthetic source")
    if cfg.tile_size % 32 or cfg.tile_size < 32:
        raise InputError(f"{path}: data.tile_size must be a multiple of 32, got {cfg.tile_size}")
    if cfg.stride is not None and not 1 <= cfg.stride <= cfg.tile_size:
        raise InputError(
            f"{path}: data.stride must be between 1 and data.tile_size ({cfg.tile_size}), got {cfg.stride}"
        )
    if cfg.normalization is not None:
        try:
            Normalization.from_dict(cfg.normalization, len(cfg.bands))
        except ValueError as exc:
            raise InputError(f"{path}: data.normalization {exc}; fix it or drop it (the backbone's is used)") from None
    positive = {"train.lr": cfg.lr, "train.loss.tau": cfg.loss["tau"]}
    non_negative = {"train.weight_decay": cfg.weight_decay, "train.grad_clip": cfg.grad_clip or 0.0}
    non_negative.update({f"train.loss.{k}": v for k, v in cfg.loss.items() if k != "tau"})
    non_negative["train.backbone_lr"] = 0.0 if cfg.backbone_lr is None else cfg.backbone_lr
    for name, v in positive.items():
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"{path}: {name} must be a finite number > 0, got {v}")
    for name, v in non_negative.items():
        if not (math.isfinite(v) and v >= 0):
            raise InputError(f"{path}: {name} must be a finite number >= 0, got {v}")
    for name, bands in (("data.bands", cfg.bands), ("data.post_bands", cfg.post_bands)):
        if bands is not None and (not bands or min(bands) < 1):
            raise InputError(f"{path}: {name} are 1-based band numbers (e.g. [1, 2, 3]), got {bands}")
    if cfg.post_bands is not None and len(cfg.post_bands) != len(cfg.bands):
        raise InputError(f"{path}: data.post_bands must list as many bands as data.bands ({len(cfg.bands)})")
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise InputError(f"{path}: train.lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")
    if cfg.batch_size < 1 or cfg.stage1_epochs < 0 or cfg.stage2_epochs < 0:
        raise InputError(f"{path}: batch_size must be >= 1 and epochs >= 0")
