"""ONNX: export a model package as a two-input ONNX model, and run ONNX change models.

The ONNX model takes ``pre`` and ``post`` (N x C x H x W float32, already normalised as the
metadata says) and returns ``logits`` (N x (K+1) x H x W). It carries the package's JSON
header in ``metadata_props`` under ``"s2m_geo"``, so a user can bring their own trained
change model as ONNX with the same contract.

Export uses torch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which s2m-geo does not depend on. N, H and W are dynamic; the export is
checked with onnxruntime against torch at the tile size and at a second size, and falls back
to a fixed H x W (= tile size) if the dynamic graph does not reproduce torch there.
H and W given to the graph must be multiples of 32; :class:`OnnxChangeModel` pads other sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import discard, publish, temp_path
from ..errors import InputError, S2MError
from .package import META_KEY, PackageMeta, load_package

__all__ = ["export_onnx", "OnnxChangeModel", "load_onnx_model"]

PAD_MULTIPLE = 32
#: Batches of at least this many pixels an input (N x H x W) run without onnxruntime's memory
#: pattern on the CPU. The pattern plans one block for all of a shape's intermediate tensors,
#: which the arena holds beside them: for large batches that is far more memory for the same
#: speed (MobileNetV3, 4 tiles of 512²: 2858 against 1576 MiB; the default model, 16 of 256²:
#: 1095 against 832), while for small ones it is a little faster (docs/benchmarks.md).
MEM_PATTERN_MAX_PIXELS = 1 << 20
_CHECK_ATOL = 1e-3

_ADD_META_HINT = (
    "add the s2m-geo metadata JSON under the key 's2m_geo' "
    "(m = onnx.load(p); e = m.metadata_props.add(); e.key = 's2m_geo'; "
    "e.value = json_text; onnx.save(m, p))"
)


def _ort_session(path: str, providers: Sequence[str] | None = None, mem_pattern: bool = True) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_mem_pattern = mem_pattern
    opts.log_severity_level = 3
    # onnxruntime's pool threads busy-wait between operators by default. Beside the pipeline's
    # readers and its stitching thread (or any other program on a laptop) the spinning threads
    # take the cores those need, and a preempted spinner stalls every operator: on 2 cores with
    # one of them busy, the default model ran 60 tiles in 11.8-13.4 s spinning, 8.8-9.2 s not;
    # with both cores free, 5.0 s either way (docs/benchmarks.md).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=opts, providers=list(providers or ["CPUExecutionProvider"]))


def export_onnx(
    package_path: str | Path, out_path: str | Path, tile_size: int | None = None, opset: int = 17, check: bool = True
) -> Path:
    """Export the package at ``package_path`` to ``out_path`` (written atomically).

    Args:
        tile_size: size of the example tiles used for tracing and checks (default: the
            package's ``tile_size``), rounded up to a multiple of 32. It becomes the fixed
            H x W only if the dynamic-size graph fails its check.
        opset: ONNX opset (>= 14 for scaled-dot-product attention).
        check: compare onnxruntime with torch (max abs diff <= 1e-3) before writing.
    """
    import onnx
    import torch

    model, meta = load_package(package_path)
    out_path = Path(out_path)
    size = int(tile_size or meta.tile_size)
    size = -(-size // PAD_MULTIPLE) * PAD_MULTIPLE
    c = len(meta.bands["pre"])
    gen = torch.Generator().manual_seed(0)
    example = (torch.randn(1, c, size, size, generator=gen), torch.randn(1, c, size, size, generator=gen))
    small = max(PAD_MULTIPLE, (size // 2) // PAD_MULTIPLE * PAD_MULTIPLE)
    probe_size = (small, small + PAD_MULTIPLE) if small != size else (size + 32, size + 64)
    probe = (torch.randn(2, c, *probe_size, generator=gen), torch.randn(2, c, *probe_size, generator=gen))

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(temp_path(out_path, create=False))
    try:
        for dynamic_hw in (True, False):
            axes = {0: "N", 2: "H", 3: "W"} if dynamic_hw else {0: "N"}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    example,
                    tmp,
                    input_names=["pre", "post"],
                    output_names=["logits"],
                    opset_version=opset,
                    dynamo=False,
                    do_constant_folding=True,
                    dynamic_axes={"pre": axes, "post": axes, "logits": axes},
                )
            if not check:
                break
            sess = _ort_session(tmp)
            ok = True
            for pair in (example, probe) if dynamic_hw else (example,):
                with torch.no_grad():
                    ref = model(*pair).numpy()
                try:
                    got = sess.run(None, {"pre": pair[0].numpy(), "post": pair[1].numpy()})[0]
                    diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else np.inf
                except Exception:  # onnxruntime refused the dynamic shape
                    diff = np.inf
                if not diff <= _CHECK_ATOL:
                    ok = False
                    break
            if ok:
                break
            if not dynamic_hw:
                raise S2MError(
                    f"ONNX export of {package_path} does not reproduce the torch "
                    f"model (max abs diff {diff:.3g}); please report this"
                )
        proto = onnx.load(tmp)
        meta_out = PackageMeta.from_dict(meta.to_dict(), str(package_path))
        if not dynamic_hw:  # the graph takes size x size tiles only
            meta_out.tile_size = size
            meta_out.default_overlap = min(meta_out.default_overlap, (size - 1) // 2)
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, meta_out.to_json()
        proto.producer_name = "s2m-geo"
        onnx.save(proto, tmp)
        publish(tmp, out_path)
    except BaseException:
        discard(tmp)
        raise
    return out_path


class OnnxChangeModel:
    """A two-input ONNX change model run with onnxruntime.

    ``model(pre, post)`` takes ``(N, C, H, W)`` float32 arrays (normalised as
    ``model.meta.normalization`` says) and returns ``(N, K+1, H, W)`` float32 logits. Sizes that
    are not multiples of 32 are zero-padded bottom/right and the logits cropped back, unless
    the model has a fixed H x W (then only that size is accepted).
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.providers = list(providers or ["CPUExecutionProvider"])
        #: whether the session plans memory by pattern (until a batch of
        #: :data:`MEM_PATTERN_MAX_PIXELS` on the CPU)
        self.mem_pattern = True
        if not self.path.is_file():
            raise InputError(f"{self.path}: ONNX model not found; check the path")
        try:
            self.session = _ort_session(str(self.path), self.providers)
        except Exception as exc:
            raise InputError(
                f"{self.path}: not a readable ONNX model ({str(exc)[:200]}); export it again (s2m-geo export)"
            ) from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        fix = (
            "the model must take exactly two inputs named 'pre' and 'post', each "
            "N x C x H x W float32, and return logits N x (K+1) x H x W; rename the inputs "
            "when exporting (torch.onnx.export(..., input_names=['pre', 'post']))"
        )
        if set(inputs) != {"pre", "post"}:
            raise InputError(f"{self.path}: ONNX inputs are {sorted(inputs)}; {fix}")
        if any(len(i.shape) != 4 for i in inputs.values()):
            raise InputError(
                f"{self.path}: ONNX inputs have shapes {[i.shape for i in inputs.values()]}, not 4-D; {fix}"
            )
        outputs = self.session.get_outputs()
        if not outputs or len(outputs[0].shape) != 4:
            raise InputError(f"{self.path}: ONNX output is not 4-D; {fix}")
        self.output_name = outputs[0].name
        props = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in props:
            raise InputError(f"{self.path}: ONNX model has no s2m-geo metadata; {_ADD_META_HINT}")
        self.meta = PackageMeta.from_json(props[META_KEY], str(self.path), architecture=None)
        k1 = self.meta.num_classes
        out_c = outputs[0].shape[1]
        if isinstance(out_c, int) and out_c != k1:
            raise InputError(
                f"{self.path}: ONNX output has {out_c} channels but its class "
                f"table has {k1} classes (K+1); fix the metadata or the model"
            )
        c = len(self.meta.bands["pre"])
        for i in inputs.values():
            if isinstance(i.shape[1], int) and i.shape[1] != c:
                raise InputError(
                    f"{self.path}: ONNX input '{i.name}' takes {i.shape[1]} bands "
                    f"but the metadata lists {c}; fix 'bands' in the metadata"
                )
        hw = inputs["pre"].shape[2:]
        self.fixed_size: tuple[int, int] | None = (hw[0], hw[1]) if all(isinstance(v, int) for v in hw) else None
        n = inputs["pre"].shape[0]
        #: A batch size the graph was exported with (e.g. 1); batches are then run in chunks of it.
        self.fixed_batch: int | None = n if isinstance(n, int) and n > 0 else None

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    def __call__(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        pre = np.ascontiguousarray(pre, dtype=np.float32)
        post = np.ascontiguousarray(post, dtype=np.float32)
        if pre.ndim != 4 or pre.shape != post.shape:
            raise ValueError(f"pre {pre.shape} and post {post.shape} must be equal N x C x H x W")
        h, w = pre.shape[2:]
        if self.fixed_size is not None:
            if (h, w) != self.fixed_size:
                raise ValueError(
                    f"{self.path} takes {self.fixed_size[0]} x {self.fixed_size[1]} tiles only, got {h} x {w}"
                )
            ph = pw = 0
        else:
            ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
            if ph or pw:
                pad = ((0, 0), (0, 0), (0, ph), (0, pw))
                pre, post = np.pad(pre, pad), np.pad(post, pad)
        logits = self._run(pre, post)
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise InputError(
                f"{self.path}: ONNX model returned shape {logits.shape}, expected N x {self.num_classes} x H x W"
            )
        return logits[:, :, :h, :w] if (ph or pw) else logits

    def _on_cpu_only(self) -> bool:
        return self.session.get_providers() == ["CPUExecutionProvider"]

    def _run(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        """The session on the batch, in chunks of a fixed batch size (the last one padded)."""
        b = self.fixed_batch
        n, _, h, w = pre.shape
        if self.mem_pattern and min(n, b or n) * h * w >= MEM_PATTERN_MAX_PIXELS and self._on_cpu_only():
            # the same model in a session without the pattern; the one it replaces goes with
            # whatever it held (its weights, a smaller batch's pattern)
            self.session = _ort_session(str(self.path), self.providers, mem_pattern=False)
            self.mem_pattern = False
        if b is None or len(pre) == b:
            return self.session.run([self.output_name], {"pre": pre, "post": post})[0]
        parts = []
        for i in range(0, len(pre), b):
            a, c = pre[i : i + b], post[i : i + b]
            short = b - len(a)
            if short:
                pad = ((0, short), (0, 0), (0, 0), (0, 0))
                a, c = np.pad(a, pad), np.pad(c, pad)
            parts.append(self.session.run([self.output_name], {"pre": a, "post": c})[0][: b - short])
        return np.concatenate(parts)


def load_onnx_model(path: str | Path, providers: Sequence[str] | None = None) -> OnnxChangeModel:
    """Open and validate a two-input ONNX change model (see :class:`OnnxChangeModel`)."""
    return OnnxChangeModel(path, providers)
