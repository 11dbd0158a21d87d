"""The model package: one ``.safetensors`` file = weights + one JSON header (docs/design.md §3.2).

Tensors are the :class:`~s2m_geo.model.s2m.S2MNet` state dict. The safetensors header
metadata holds one JSON document under the key ``"s2m_geo"``::

    {"format_version": 1, "architecture": "s2m", "config": {...S2MConfig...},
     "backbone": "vit_small_patch16_dinov3", "class_table": {...},
     "bands": {"pre": [1, 2, 3], "post": [1, 2, 3]},
     "normalization": {"mean": [...], "std": [...], "scale": 255.0},
     "tile_size": 512, "default_overlap": 64, "training_gsd_m": 0.5,
     "training": {...summary...}, "metrics": {...}}

Normalisation of a band value ``v``: ``(v / scale - mean[c]) / std[c]`` (``normalization.py``).

Loading never unpickles: the file's first bytes are checked to be a safetensors header
before anything else reads it, and a pickle / ``torch.save`` file is refused with an
:class:`~s2m_geo.errors.InputError`. This module imports torch only when weights are loaded
or saved, so :func:`read_package_meta` works without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_path
from ..classes import ClassTable, class_table_from_dict
from ..errors import InputError
from .config import S2MConfig
from .normalization import IMAGENET, Normalization

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .s2m import S2MNet

FORMAT_VERSION = 1
ARCHITECTURE = "s2m"
META_KEY = "s2m_geo"
_MAX_HEADER = 100 * 1024 * 1024
#: Tile sizes a package may ask for (the command line's --tile-size range).
MIN_TILE, MAX_TILE = 32, 8192


__all__ = [
    "PackageMeta",
    "save_package",
    "load_package",
    "read_package_meta",
    "normalization_for_backbone",
    "FORMAT_VERSION",
    "ARCHITECTURE",
    "META_KEY",
]


def normalization_for_backbone(backbone: str, scale: float = 255.0) -> dict[str, Any]:
    """The mean/std the timm pretrained weights expect (e.g. DINOv3 sat493m vs ImageNet)."""
    import timm

    try:
        cfg = timm.get_pretrained_cfg(backbone)
    except (RuntimeError, ValueError, KeyError):
        cfg = None
    if cfg is None or not cfg.mean or not cfg.std:
        return Normalization(IMAGENET.mean, IMAGENET.std, float(scale)).to_dict()
    return Normalization(tuple(map(float, cfg.mean)), tuple(map(float, cfg.std)), float(scale)).to_dict()


@dataclass
class PackageMeta:
    """What a model package (or an ONNX model) says about itself.

    ``config`` is required for ``.safetensors`` packages (the network is rebuilt from it);
    an ONNX model of another architecture may leave it ``None``.
    """

    class_table: ClassTable
    config: S2MConfig | None = None
    bands: dict[str, list[int]] = field(default_factory=lambda: {"pre": [1, 2, 3], "post": [1, 2, 3]})
    normalization: dict[str, Any] = field(default_factory=IMAGENET.to_dict)
    tile_size: int = 512
    default_overlap: int = 64
    training_gsd_m: float | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    architecture: str = ARCHITECTURE

    @property
    def backbone(self) -> str | None:
        return None if self.config is None else self.config.backbone

    @property
    def num_classes(self) -> int:
        return self.class_table.num_classes

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "config": None if self.config is None else self.config.to_dict(),
            "backbone": self.backbone,
            "class_table": self.class_table.to_dict(),
            "bands": {k: list(v) for k, v in self.bands.items()},
            "normalization": dict(self.normalization),
            "tile_size": self.tile_size,
            "default_overlap": self.default_overlap,
            "training_gsd_m": self.training_gsd_m,
            "training": self.training,
            "metrics": self.metrics,
        }

    def to_json(self) -> str:
        """The header JSON (strict JSON: NaN/inf in metrics are refused)."""
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=False)

    @classmethod
    def from_dict(cls, d: Any, source: str = "<metadata>", architecture: str | None = ARCHITECTURE) -> PackageMeta:
        """Validate a header dict. ``architecture=None`` accepts any (ONNX models)."""

        def bad(msg: str) -> InputError:
            return InputError(f"{source}: invalid model package: {msg}")

        if not isinstance(d, Mapping):
            raise bad("model metadata is not a JSON object; re-export the model with s2m-geo")
        version = _format_version(d, bad)
        arch = d.get("architecture")
        if not isinstance(arch, str) or (architecture is not None and arch != architecture):
            raise bad(
                f"model architecture is {arch!r}, expected {architecture!r}; use a "
                f"model package made by 's2m-geo train' (or bring other models as ONNX)"
            )
        cfg_d = d.get("config")
        config = None
        if cfg_d is not None:
            config = S2MConfig.from_dict(cfg_d, source)
        elif arch == ARCHITECTURE:
            raise bad("model metadata lacks 'config'; it cannot be rebuilt")
        if "class_table" not in d:
            raise bad("model metadata lacks 'class_table'; add the class table the model predicts")
        table = class_table_from_dict(d["class_table"], f"{source} (class_table)")
        if config is not None and config.num_classes != table.num_classes:
            raise bad(
                f"model predicts {config.num_classes} classes but its class table has "
                f"{table.num_classes}; fix the class table in the metadata"
            )
        bands = _bands(d, bad)
        in_chans = len(bands["pre"])
        if config is not None and config.in_chans != in_chans:
            raise bad(f"'bands' lists {in_chans} bands per epoch but the model takes {config.in_chans}")
        try:
            norm = Normalization.from_dict(d.get("normalization", IMAGENET.to_dict()), in_chans)
        except ValueError as exc:
            raise bad(f"'normalization' {exc}, got {d.get('normalization')!r}") from None
        tile = d.get("tile_size", 512)
        overlap = d.get("default_overlap", 64)
        if not isinstance(tile, int) or isinstance(tile, bool) or not MIN_TILE <= tile <= MAX_TILE:
            raise bad(f"'tile_size' must be an integer in [{MIN_TILE}, {MAX_TILE}], got {tile!r}")
        if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= 2 * overlap < tile:
            raise bad(f"'default_overlap' must be an integer in [0, tile_size/2), got {overlap!r}")
        gsd = d.get("training_gsd_m")
        if gsd is not None and (not isinstance(gsd, (int, float)) or isinstance(gsd, bool) or not gsd > 0):
            raise bad(f"'training_gsd_m' must be a positive number or null, got {gsd!r}")
        training, metrics = d.get("training") or {}, d.get("metrics") or {}
        if not isinstance(training, Mapping) or not isinstance(metrics, Mapping):
            raise bad("'training' and 'metrics' must be JSON objects")
        return cls(
            class_table=table,
            config=config,
            bands=bands,
            normalization=norm.to_dict(),
            tile_size=tile,
            default_overlap=overlap,
            training_gsd_m=None if gsd is None else float(gsd),
            training=dict(training),
            metrics=dict(metrics),
            format_version=version,
            architecture=arch,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<metadata>", architecture: str | None = ARCHITECTURE) -> PackageMeta:
        try:
            d = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise InputError(
                f"{source}: model metadata is not valid JSON ({exc}); re-export the model with s2m-geo"
            ) from exc
        return cls.from_dict(d, source, architecture)


def _format_version(d: Mapping, bad: Callable[[str], InputError]) -> int:
    version = d.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f"model metadata has no valid 'format_version' (got {version!r}); expected {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise bad(
            f"model format_version {version} is newer than this s2m-geo understands "
            f"(expected {FORMAT_VERSION}); upgrade s2m-geo"
        )
    if version != FORMAT_VERSION:
        raise bad(
            f"unsupported model format_version {version} (expected {FORMAT_VERSION}); "
            f"re-export the model with this s2m-geo"
        )
    return version


def _bands(d: Mapping, bad: Callable[[str], InputError]) -> dict[str, list[int]]:
    bands = d.get("bands", {"pre": [1, 2, 3], "post": [1, 2, 3]})
    if (
        not isinstance(bands, Mapping)
        or set(bands) != {"pre", "post"}
        or not all(
            isinstance(v, list) and v and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in v)
            for v in bands.values()
        )
    ):
        raise bad(f"'bands' must be {{'pre': [1-based band numbers], 'post': [...]}}, got {bands!r}")
    if len(bands["pre"]) != len(bands["post"]):
        raise bad(f"'bands' must list as many bands for pre as for post, got {bands!r}")
    return {"pre": list(bands["pre"]), "post": list(bands["post"])}


def _check_safetensors(path: Path) -> dict[str, Any]:
    """Read and check the safetensors header without interpreting anything else.

    Returns the parsed header. A pickle / ``torch.save`` zip / other file is refused.
    """
    if not path.is_file():
        raise InputError(f"{path}: model package not found; check the path")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        # a safetensors header length comes first, then '{': decide on that, never on the
        # first byte alone (a length whose low byte is 0x80 looks like a pickle opcode)
        plausible = 2 <= n <= min(size - 8, _MAX_HEADER) and f.read(1) == b"{"
        if not plausible:
            if head[:2] == b"PK" or head[:1] == b"\x80":
                raise InputError(
                    f"{path}: this is a PyTorch pickle checkpoint (.pt/.pth), not an s2m-geo "
                    f"model package; s2m-geo never unpickles files. Use a .safetensors package "
                    f"written by 's2m-geo train' (or save_package), or an ONNX model"
                )
            raise InputError(
                f"{path}: not a safetensors file; a model package is a "
                f".safetensors file written by 's2m-geo train' (or save_package)"
            )
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(
            f"{path}: corrupt safetensors header; the file is damaged or not a model package, copy it again"
        ) from exc
    if not isinstance(header, dict):
        raise InputError(f"{path}: corrupt safetensors header; copy the package again")
    return header


def read_package_meta(path: str | Path) -> PackageMeta:
    """The :class:`PackageMeta` of a package, reading only the file header (no tensors)."""
    path = Path(path)
    _check_safetensors(path)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{path}: unreadable safetensors file ({exc}); copy it again") from exc
    if META_KEY not in metadata:
        raise InputError(
            f"{path}: a safetensors file without s2m-geo metadata (no "
            f"'{META_KEY}' header key) is not a model package; use a package "
            f"written by 's2m-geo train' (or save_package)"
        )
    return PackageMeta.from_json(metadata[META_KEY], str(path))


def save_package(path: str | Path, model: S2MNet, meta: PackageMeta) -> Path:
    """Write ``model`` + ``meta`` to ``path`` atomically (temp file + ``os.replace``).

    ``meta.config`` is filled from ``model.cfg`` when ``None`` and must equal it otherwise.
    """
    from safetensors.torch import save_model

    path = Path(path)
    cfg = model.cfg
    if meta.config is None:
        meta.config = cfg
    elif meta.config.to_dict() != cfg.to_dict():
        raise ValueError("meta.config differs from the model's config; pass meta.config=None or the model's own config")
    if meta.class_table.num_classes != cfg.num_classes:
        raise ValueError(
            f"class table has {meta.class_table.num_classes} classes, the model predicts {cfg.num_classes}"
        )
    meta_json = meta.to_json()
    PackageMeta.from_json(meta_json, str(path))  # what we write must read back
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, create=False) as tmp:
        save_model(model, str(tmp), metadata={META_KEY: meta_json})
    return path


def load_package(path: str | Path, device: str | torch.device = "cpu") -> tuple[S2MNet, PackageMeta]:
    """Rebuild the network of a package and load its weights (strict); never unpickles.

    Returns ``(model in eval mode on device, meta)``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from .s2m import build_model

    path = Path(path)
    meta = read_package_meta(path)
    assert meta.config is not None
    try:
        model = build_model(meta.config)
    except InputError:
        raise
    except Exception as exc:  # the header passed its checks, but timm cannot build that network
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise InputError(
            f"{path}: the network its header describes cannot be built ({msg}); the package is "
            f"damaged or was edited, export it again"
        ) from None
    try:
        load_model(model, str(path), strict=True, device="cpu")
    except (RuntimeError, SafetensorError) as exc:
        msg = " ".join(str(exc).split())[:400]
        raise InputError(
            f"{path}: the weights do not fit the architecture in its own "
            f"metadata ({msg}); the package is damaged or was edited, re-export "
            f"it"
        ) from exc
    return model.to(device).eval(), meta
