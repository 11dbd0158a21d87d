"""Device choice shared by training and inference."""

from __future__ import annotations

import ctypes.util
import os
import platform
import sys
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def accelerator_possible() -> bool:
    """Whether torch could find a GPU here, decided without importing torch (which takes
    seconds and hundreds of MB): an NVIDIA or AMD ROCm driver is installed, or Apple silicon."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    if os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/kfd"):
        return True
    return any(ctypes.util.find_library(name) for name in ("cuda", "nvcuda"))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple MPS, then the CPU; an unavailable choice is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"{{device}} {name}: no CUDA GPU is visible to torch; use {{device}} cpu or auto", params=("device",)
        )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("{device} mps: Apple MPS is not available here; use {device} cpu or auto", params=("device",))
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(
            f"{{device}} {name}: not a device name; use one of {', '.join(DEVICES)}", params=("device",)
        ) from None


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype for a device (bf16 where supported, else fp16), or None on CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
