"""S2M model: backbone factory, siamese change network, text encoders, model packages.

Names are imported lazily, so ``from s2m_geo.model import read_package_meta`` does not pull
in torch, timm or open_clip.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # config (torch-free)
    "S2MConfig": "config",
    # backbone
    "create_backbone": "backbone",
    "Backbone": "backbone",
    "TimmCnnBackbone": "backbone",
    "VitPyramidBackbone": "backbone",
    "evenly_spaced_taps": "backbone",
    "is_plain_vit": "backbone",
    # network
    "S2MNet": "s2m",
    "S2MTrainOutput": "s2m",
    "build_model": "s2m",
    "CrossAttentionDiff": "s2m",
    "TextAlignment": "s2m",
    # text encoder
    "TextEncoder": "text",
    "DEFAULT_TEXT_MODEL": "text",
    "SentenceBertEncoder": "text",
    "create_text_encoder": "text",
    "MINILM_NAME": "text",
    # package
    "PackageMeta": "package",
    "save_package": "package",
    "load_package": "package",
    "read_package_meta": "package",
    "normalization_for_backbone": "package",
    "FORMAT_VERSION": "package",
    "ARCHITECTURE": "package",
    "META_KEY": "package",
    # onnx
    "export_onnx": "export",
    "OnnxChangeModel": "export",
    "load_onnx_model": "export",
    # bring your own ONNX model
    "import_onnx": "foreign",
    "ImportResult": "foreign",
    "parse_normalization": "foreign",
}

__all__ = [
    "ARCHITECTURE",
    "Backbone",
    "CrossAttentionDiff",
    "DEFAULT_TEXT_MODEL",
    "FORMAT_VERSION",
    "ImportResult",
    "META_KEY",
    "MINILM_NAME",
    "OnnxChangeModel",
    "PackageMeta",
    "S2MConfig",
    "S2MNet",
    "S2MTrainOutput",
    "SentenceBertEncoder",
    "TextAlignment",
    "TextEncoder",
    "TimmCnnBackbone",
    "VitPyramidBackbone",
    "build_model",
    "create_backbone",
    "create_text_encoder",
    "evenly_spaced_taps",
    "export_onnx",
    "import_onnx",
    "is_plain_vit",
    "load_onnx_model",
    "load_package",
    "normalization_for_backbone",
    "parse_normalization",
    "read_package_meta",
    "save_package",
]
assert set(__all__) == set(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from .backbone import (
        Backbone,
        TimmCnnBackbone,
        VitPyramidBackbone,
        create_backbone,
        evenly_spaced_taps,
        is_plain_vit,
    )
    from .config import S2MConfig
    from .export import OnnxChangeModel, export_onnx, load_onnx_model
    from .foreign import ImportResult, import_onnx, parse_normalization
    from .package import (
        ARCHITECTURE,
        FORMAT_VERSION,
        META_KEY,
        PackageMeta,
        load_package,
        normalization_for_backbone,
        read_package_meta,
        save_package,
    )
    from .s2m import CrossAttentionDiff, S2MNet, S2MTrainOutput, TextAlignment, build_model
    from .text import DEFAULT_TEXT_MODEL, MINILM_NAME, SentenceBertEncoder, TextEncoder, create_text_encoder
