"""Shared fixtures: small synthetic scenes and the real rasters in ../shared/realdata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("S2M_REALDATA", ROOT.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata, or skip the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data not found at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory) -> dict[str, Path]:
    """A 512x512 default synthetic scene pair (seed 0)."""
    from s2m_geo.synthetic import SceneSpec, write_scene

    return write_scene(tmp_path_factory.mktemp("scene"), SceneSpec(size=512, seed=0))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised, tiny S2M package (64-pixel tiles, overlap 16) for pipeline tests."""
    import torch

    from s2m_geo.classes import load_class_table
    from s2m_geo.model import PackageMeta, build_model, save_package

    torch.manual_seed(0)
    model = build_model(
        {
            "backbone": "vit_small_patch16_dinov3",
            "backbone_kwargs": {"depth": 4, "embed_dim": 32, "num_heads": 2},
            "decoder_channels": 16,
            "attn_heads": 2,
            "align_heads": 2,
            "text_dim": 32,
        }
    )
    meta = PackageMeta(class_table=load_class_table(), tile_size=64, default_overlap=16)
    return save_package(tmp_path_factory.mktemp("model") / "tiny.safetensors", model, meta)
