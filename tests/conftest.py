"""Shared fixtures: small synthetic scenes and the real rasters in ../shared/realdata."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("S2M_REALDATA", ROOT.parent / "shared" / "realdata"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads ../shared/realdata (through the fixture) carries the realdata marker,
    so ``-m "not realdata"`` deselects exactly those."""
    for item in items:
        if "realdata" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """Models exported for the onnx runtime go to a temporary cache, never the user's."""
    path = tmp_path_factory.mktemp("s2m-cache")
    os.environ["S2M_GEO_CACHE"] = str(path)
    return path / "onnx"


@pytest.fixture(scope="session")
def qgis_runner() -> ModuleType:
    """The QGIS plugin's runner, loaded alone (it imports nothing from QGIS or s2m-geo), to
    test its copies of s2m-geo's rules against the originals."""
    spec = importlib.util.spec_from_file_location("_s2m_runner", ROOT / "qgis_plugin" / "s2m_geo_qgis" / "runner.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


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
    from s2m_geo.testing import tiny_model as make

    return make(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture()
def tiny_tmpfs(tmp_path) -> Iterator[Callable[[str], Path]]:
    """``tiny_tmpfs("1M")``: a fresh folder on a tmpfs of that size (a disk that fills up for
    real), unmounted after the test; the test is skipped where mounting is not allowed."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"tmpfs{len(mounts)}"
        mnt.mkdir()
        try:
            res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
        except OSError as exc:  # no mount command
            pytest.skip(f"cannot mount a tmpfs here ({exc})")
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.decode(errors='replace').strip()}")
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        subprocess.run(["umount", str(mnt)], check=False)
