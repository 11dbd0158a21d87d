"""Batched forward of tile pairs: a model package (torch) or a two-input ONNX model.

:func:`load_change_model` returns a runner with one method, ``probabilities(pre, post)``:
(N, C, H, W) float32 arrays in 0..255 model-input units in, (N, K+1, H, W) float32 softmax
probabilities out. The runner applies the package's normalisation, picks the device
(``auto``: CUDA > MPS > CPU), runs under ``inference_mode`` with channels-last memory and,
on a GPU, autocast (bf16 where supported).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .. import atomic
from ..atomic import sha256_file
from ..errors import InputError
from ..model.normalization import Normalization

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..model.package import PackageMeta


class ChangeModel(Protocol):
    """What the pipeline needs of a model."""

    meta: PackageMeta
    num_classes: int
    name: str

    def probabilities(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray: ...


def read_threads_for(model: ChangeModel) -> int:
    """Reader threads that keep ``model`` fed: one where it runs on the CPU (``on_cpu``), two
    otherwise. On the CPU the model is far slower than reading (the default model: ~40 ms a
    256² tile on 2 cores, one reader ~1.6 ms), and a second reader only took CPU time from it:
    two threads read a scene's tiles in the same time as one, with twice the CPU time
    (docs/benchmarks.md)."""
    return 1 if getattr(model, "on_cpu", False) else 2


def normalized(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` (float32, bit for bit) with one batch-sized array, not two."""
    out = np.subtract(x, mean)
    out /= std
    return out


class TorchChangeModel:
    """An S2M model package run with torch."""

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        import torch

        from ..devices import autocast_dtype, resolve_device
        from ..model import load_package

        self.device = resolve_device(device)
        self.model, self.meta = load_package(path, device=self.device)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.num_classes = self.meta.num_classes
        self.name = Path(path).name
        self.dtype = autocast_dtype(self.device)
        self.on_cpu = self.device.type == "cpu"
        self._mean, self._std = Normalization.from_dict(self.meta.normalization).for_0_255()
        self._mean_t = torch.from_numpy(self._mean).to(self.device)
        self._std_t = torch.from_numpy(self._std).to(self.device)

    def _input(self, x: np.ndarray) -> torch.Tensor:
        """A batch as the model's input on its device, normalised (float32, bit for bit as
        :func:`normalized`). On an accelerator the batch is normalised there: on the host it
        was the pipeline's main thread's largest share of CPU time per tile."""
        import torch

        if self.on_cpu:
            t = torch.from_numpy(normalized(x, self._mean, self._std))
        else:
            t = torch.from_numpy(np.asarray(x, np.float32)).to(self.device, copy=True)
            t.sub_(self._mean_t).div_(self._std_t)
        return t.contiguous(memory_format=torch.channels_last)

    def probabilities(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        import torch

        a, b = self._input(pre), self._input(post)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None),
        ):
            logits = self.model(a, b)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


class OnnxChangeModelRunner:
    """A two-input ONNX change model run with onnxruntime (CUDA provider when asked and present)."""

    def __init__(self, path: str | Path, device: str = "auto", name: str | None = None) -> None:
        import onnxruntime as ort

        from ..model import load_onnx_model

        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            raise InputError(
                f"{path}: {{device}} cuda but onnxruntime has no CUDA provider here; "
                f"install onnxruntime-gpu or use {{device}} cpu",
                params=("device",),
            )
        self.onnx = load_onnx_model(path, providers)
        self.on_cpu = self.onnx.session.get_providers()[0] == "CPUExecutionProvider"
        self.meta = self.onnx.meta
        self.num_classes = self.meta.num_classes
        self.name = name or Path(path).name
        self._mean, self._std = Normalization.from_dict(self.meta.normalization).for_0_255()

    def probabilities(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        logits = self.onnx(normalized(pre, self._mean, self._std), normalized(post, self._mean, self._std))
        # in place in the session's fresh output: the same values, bit for bit, as
        # e = exp(logits - max); e / sum(e), without a batch-sized temporary
        e = np.asarray(logits, dtype=np.float32)
        np.subtract(e, e.max(axis=1, keepdims=True), out=e)
        np.exp(e, out=e)
        e /= e.sum(axis=1, keepdims=True)
        return e


#: The small model shipped inside the package (see docs/default-model.md).
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "weights" / "s2m_small_cpu.safetensors"


def default_model_path() -> Path:
    """The shipped default model package; an :class:`InputError` if this install has none."""
    if not DEFAULT_MODEL.is_file():
        raise InputError(
            f"{DEFAULT_MODEL}: this s2m-geo install has no default model; "
            f"pass {{model}} FILE (train one with s2m-geo train)",
            params=("model",),
        )
    return DEFAULT_MODEL


def read_model_meta(path: str | Path) -> PackageMeta:
    """The metadata of a model package or ONNX model, without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found; check the path")
    if path.suffix.lower() == ".onnx":
        from ..model import load_onnx_model

        return load_onnx_model(path).meta
    from ..model import read_package_meta

    return read_package_meta(path)


RUNTIMES = ("auto", "torch", "onnx")


def load_change_model(path: str | Path, device: str = "auto", runtime: str = "auto") -> ChangeModel:
    """A runner for a ``.safetensors`` model package or a two-input ``.onnx`` model.

    ``runtime`` (model packages only): ``torch``; ``onnx`` — the package exported once to
    ONNX and cached (:func:`cached_onnx`), run with onnxruntime; ``auto`` — onnx where the
    model would run on the CPU (2-3x faster there, the same classes up to floating-point
    ties) and the export works with tiles of any size, else torch.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found; check {{model}}", params=("model",))
    if runtime not in RUNTIMES:
        raise InputError(f"{{runtime}} {runtime}: choose one of {', '.join(RUNTIMES)}", params=("runtime",))
    if path.suffix.lower() == ".onnx":
        return OnnxChangeModelRunner(path, device)
    if runtime == "onnx" or (runtime == "auto" and _runs_on_cpu(device)):
        runner = _onnx_runner(path, device, strict=runtime == "onnx")
        if runner is not None:
            return runner
    return TorchChangeModel(path, device)


def _onnx_runner(path: Path, device: str, strict: bool) -> OnnxChangeModelRunner | None:
    """The package's cached ONNX export as a runner. Not strict (``auto``): None where torch
    must run it — an export that fails, or that takes fixed-size tiles only — remembered in a
    ``.use-torch`` note beside the cache entry, so later runs do not try again."""
    out = onnx_cache_entry(path)
    note = out.with_suffix(".use-torch")
    if not strict and note.is_file():
        return None
    try:
        runner = OnnxChangeModelRunner(_export(path, out), device, name=path.name)
    except InputError:
        raise
    except Exception as exc:
        if strict:
            raise InputError(
                f"{path}: cannot run with onnxruntime ({exc}); use {{runtime}} torch", params=("runtime",)
            ) from exc
        with atomic.published_now():
            atomic.write_text(note, f"the ONNX export failed: {exc}\n")
        return None
    if strict or runner.onnx.fixed_size is None:
        return runner
    with atomic.published_now():
        atomic.write_text(note, f"the ONNX export takes {runner.onnx.fixed_size} tiles only\n")
    return None


def prepare_runtime(path: str | Path, device: str = "auto", runtime: str = "auto") -> None:
    """Make the ONNX export :func:`load_change_model` will use, now: a batch calls this once
    before its local workers start, so they do not all export the same model at once."""
    path = Path(path)
    if path.suffix.lower() == ".onnx" or runtime == "torch":
        return
    if runtime == "onnx" or _runs_on_cpu(device):
        _onnx_runner(path, device, strict=runtime == "onnx")


def _runs_on_cpu(device: str) -> bool:
    from ..devices import accelerator_possible, resolve_device

    if device == "cpu" or (device == "auto" and not accelerator_possible()):
        return True  # known without importing torch
    return resolve_device(device).type == "cpu"


def onnx_cache_dir() -> Path:
    """Where exported models are kept: ``$S2M_GEO_CACHE/onnx``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``s2m-geo/onnx``."""
    root = os.environ.get("S2M_GEO_CACHE")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "s2m-geo")
    return Path(root) / "onnx"


def onnx_cache_entry(package: str | Path) -> Path:
    """Where ``package``'s ONNX export is kept: :func:`onnx_cache_dir`, under the package's
    SHA-256 and this s2m-geo's version."""
    from .. import __version__

    package = Path(package)
    return onnx_cache_dir() / f"{package.stem}-{sha256_file(package)[:20]}-{__version__}.onnx"


def cached_onnx(package: str | Path) -> Path:
    """``package`` exported to a two-input ONNX model, once (written atomically, so
    concurrent first uses are safe)."""
    return _export(Path(package), onnx_cache_entry(package))


#: The cached export is traced and checked on tiles of at most this size. A header may name a
#: tile of up to 8192 px, and checking the export at that size runs the model on an 8192² pair
#: (a ViT: minutes and gigabytes before the first tile of a small scene). The graph takes tiles
#: of any size; one that takes a fixed size only is not used from the cache under ``auto``.
EXPORT_CHECK_TILE = 512


def _export(package: Path, out: Path) -> Path:
    if not out.is_file():
        from ..model import export_onnx, read_package_meta

        size = min(read_package_meta(package).tile_size, EXPORT_CHECK_TILE)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic.published_now():  # a cache entry, read right away: not one of the run's outputs
            export_onnx(package, out, tile_size=size)
    return out
