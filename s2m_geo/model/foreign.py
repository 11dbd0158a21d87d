"""Bring your own model: check a two-input ONNX change model made elsewhere and attach the
s2m-geo metadata to it (``s2m-geo import-onnx``; the contract is docs/models.md).

:func:`import_onnx` checks the graph's inputs (two, ``pre`` and ``post`` — or the two named
by ``inputs``, renamed — each 4-D float32), its first output (4-D float logits, K+1 channels
where a fixed size says so), runs it with onnxruntime on a random normalised pair at the
tile size (and at a second size when H and W are dynamic), checks the logits are
N x (K+1) x H x W and finite, and writes the model with its metadata under ``"s2m_geo"``
atomically. Fixed batch sizes run (in chunks of the batch, :class:`~.export.OnnxChangeModel`);
a fixed H x W becomes the tile size. Every refusal is one :class:`~s2m_geo.errors.InputError`
naming the file and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import discard, publish, temp_path
from ..classes import ClassTable
from ..errors import InputError
from .export import PAD_MULTIPLE, _ort_session, load_onnx_model
from .normalization import IMAGENET, Normalization
from .package import ARCHITECTURE, MAX_TILE, META_KEY, MIN_TILE, PackageMeta

__all__ = ["ImportResult", "import_onnx", "parse_normalization", "DEFAULT_ARCHITECTURE"]

#: What ``architecture`` says of an imported model unless told otherwise.
DEFAULT_ARCHITECTURE = "custom"
_ARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_INPUT_TYPE = "tensor(float)"
_LOGIT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
_CONTRACT = "two inputs 'pre' and 'post', each N x C x H x W float32, and logits N x (K+1) x H x W as first output"


@dataclass
class ImportResult:
    """What :func:`import_onnx` wrote and checked."""

    path: Path
    meta: PackageMeta
    #: One line per check that passed, in order (what ``s2m-geo import-onnx`` prints).
    checks: list[str] = field(default_factory=list)
    fixed_size: int | None = None
    fixed_batch: int | None = None


def parse_normalization(text: str, bands: int, scale: float = 255.0) -> Normalization:
    """``imagenet``, ``none`` (mean 0, std 1: the model sees ``v / scale``) or
    ``MEAN1,MEAN2,.../STD1,STD2,...`` (one per band, or one for every band), with ``scale``
    the band value of full range. Raises :class:`InputError` naming ``normalization``."""
    spec = text.strip().lower()
    try:
        if spec == "imagenet":
            mean, std = IMAGENET.mean, IMAGENET.std
        elif spec == "none":
            mean, std = (0.0,) * bands, (1.0,) * bands
        else:
            m, s = spec.split("/")
            mean = tuple(float(v) for v in m.split(","))
            std = tuple(float(v) for v in s.split(","))
            if len(mean) == 1 and len(std) == 1:
                mean, std = mean * bands, std * bands
        norm = Normalization(mean, std, float(scale))
    except ValueError as exc:
        why = str(exc) if "/" in spec and spec.count("/") == 1 else "not a normalisation"
        raise InputError(
            f"{{normalization}} {text}: {why}; give imagenet, none, or MEAN1,MEAN2,MEAN3/STD1,STD2,STD3 "
            f"(positive stds; {{scale}} must be positive)",
            params=("normalization", "scale"),
        ) from None
    if len(norm.mean) != bands:
        raise InputError(
            f"{{normalization}} {text}: gives {len(norm.mean)} means and stds but the model reads {bands} "
            f"band(s); give one mean and std per band (MEAN1,.../STD1,...) or none",
            params=("normalization",),
        )
    return norm


def _shape(dims: Sequence[Any]) -> str:
    return " x ".join(str(d) if isinstance(d, int) else (str(d) if d else "?") for d in dims)


def _dim(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _input_names(src: Path, names: list[str], inputs: Sequence[str] | None) -> tuple[str, str]:
    """The model's inputs that take pre and post."""
    if inputs is not None:
        pair = [n.strip() for n in inputs]
        if len(pair) != 2 or pair[0] == pair[1] or not all(pair):
            raise InputError(
                f"{{inputs}} {','.join(inputs)}: give the model's two input names, pre's first, e.g. "
                f"{{inputs}} {','.join(names[:2]) or 'a,b'}",
                params=("inputs",),
            )
        missing = [n for n in pair if n not in names]
        if missing:
            raise InputError(
                f"{src}: has no input {missing[0]!r} (its inputs are {names}); pass {{inputs}} with two of them, "
                f"pre's first",
                params=("inputs",),
            )
        if set(pair) & {"pre", "post"} and pair != ["pre", "post"]:
            raise InputError(
                f"{src}: inputs named 'pre' or 'post' cannot be given other roles ({{inputs}} "
                f"{','.join(pair)}); rename them when exporting",
                params=("inputs",),
            )
        return pair[0], pair[1]
    if len(names) != 2:
        raise InputError(f"{src}: the model has {len(names)} input(s) {names}; s2m-geo needs {_CONTRACT}")
    if set(names) != {"pre", "post"}:
        raise InputError(
            f"{src}: ONNX inputs are {names}, not 'pre' and 'post'; pass {{inputs}} {names[0]},{names[1]} "
            f"(pre's input first) or rename them when exporting (torch.onnx.export(..., "
            f"input_names=['pre', 'post']))",
            params=("inputs",),
        )
    return "pre", "post"


def _tile_and_overlap(
    src: Path, hw: tuple[Any, Any], tile_size: int | None, overlap: int | None
) -> tuple[int, int, int | None]:
    """(tile size, overlap, fixed size or None) from the model's H x W and the options."""
    h, w = _dim(hw[0]), _dim(hw[1])
    fixed = None
    if (h is None) != (w is None) or (h is not None and h != w):
        raise InputError(
            f"{src}: the model takes {_shape(hw)} tiles; s2m-geo cuts square tiles, so export it with H and W "
            f"both dynamic (dynamic_axes) or both fixed to one size"
        )
    if h is not None:
        fixed = h
        if not MIN_TILE <= h <= MAX_TILE:
            raise InputError(f"{src}: the model takes {h} x {h} tiles only; s2m-geo needs {MIN_TILE}-{MAX_TILE}")
        if tile_size is not None and tile_size != h:
            raise InputError(
                f"{src}: the model takes {h} x {h} tiles only, not {{tile_size}} {tile_size}; pass "
                f"{{tile_size}} {h} (or export it with dynamic H and W)",
                params=("tile_size",),
            )
        tile_size = h
    tile = 512 if tile_size is None else tile_size
    if not MIN_TILE <= tile <= MAX_TILE:
        raise InputError(f"{{tile_size}} {tile}: must be between {MIN_TILE} and {MAX_TILE}", params=("tile_size",))
    ov = tile // 8 if overlap is None else overlap
    if not 0 <= 2 * ov < tile:
        raise InputError(
            f"{{overlap}} {ov}: must be at least 0 and less than half the tile size ({tile}); pass a smaller "
            f"{{overlap}}",
            params=("overlap", "tile_size"),
        )
    return tile, ov, fixed


def _bands(
    src: Path, channels: Any, bands: Sequence[int] | None, post_bands: Sequence[int] | None
) -> dict[str, list[int]]:
    c = _dim(channels)
    pre = list(bands) if bands else list(range(1, (c or 3) + 1))
    post = list(post_bands) if post_bands else list(pre)
    if len(post) != len(pre):
        raise InputError(
            f"{{post_bands}} {','.join(map(str, post))}: lists {len(post)} bands but {{bands}} lists {len(pre)}; "
            f"give each scene as many bands as the model reads",
            params=("post_bands", "bands"),
        )
    if c is not None and len(pre) != c:
        raise InputError(
            f"{src}: the model takes {c} band(s) per scene but {{bands}} {','.join(map(str, pre))} gives "
            f"{len(pre)}; pass {{bands}} with {c} band numbers, e.g. {','.join(map(str, range(1, c + 1)))}",
            params=("bands",),
        )
    return {"pre": pre, "post": post}


def _rename_inputs(src: Path, proto: Any, old: tuple[str, str]) -> None:
    """Make the graph's inputs ``old`` into ``pre`` and ``post`` (an Identity node each)."""
    import onnx

    graph = proto.graph
    used = {n for node in graph.node for n in (*node.input, *node.output)} | {i.name for i in graph.initializer}
    used |= {o.name for o in graph.output}
    if used & {"pre", "post"}:
        raise InputError(
            f"{src}: the graph already has a tensor named 'pre' or 'post'; rename the inputs when exporting "
            "(torch.onnx.export(..., input_names=['pre', 'post']))"
        )
    for new, name in zip(("pre", "post"), old, strict=True):
        vi = next(i for i in graph.input if i.name == name)
        vi.name = new
        graph.node.insert(0, onnx.helper.make_node("Identity", [new], [name], name=f"s2m_geo_{new}"))
    order = sorted(graph.input, key=lambda i: {"pre": 0, "post": 1}.get(i.name, 2))
    copies = [type(i)() for i in order]
    for c, i in zip(copies, order, strict=True):
        c.CopyFrom(i)
    del graph.input[:]
    graph.input.extend(copies)


def _run_check(sess: Any, out_name: str, batch: int, c: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pre = rng.standard_normal((batch, c, size, size), dtype=np.float32)
    post = rng.standard_normal((batch, c, size, size), dtype=np.float32)
    result: np.ndarray = sess.run([out_name], {"pre": pre, "post": post})[0]
    return result


def import_onnx(
    src: str | Path,
    dst: str | Path,
    classes: ClassTable,
    *,
    bands: Sequence[int] | None = None,
    post_bands: Sequence[int] | None = None,
    normalization: str | Normalization = "imagenet",
    scale: float = 255.0,
    tile_size: int | None = None,
    overlap: int | None = None,
    training_gsd_m: float | None = None,
    inputs: Sequence[str] | None = None,
    architecture: str = DEFAULT_ARCHITECTURE,
    overwrite: bool = False,
) -> ImportResult:
    """Check the two-input ONNX change model ``src`` and write it to ``dst`` with s2m-geo metadata.

    Args:
        classes: the class table the model's K+1 output channels are (id 0 = no change).
        bands / post_bands: 1-based bands of pre and post (default: 1..C when the model fixes
            C bands, else 1,2,3; post: as pre).
        normalization: ``imagenet``, ``none``, ``MEAN1,.../STD1,...`` (with ``scale``, the
            band value of full range), or a :class:`Normalization`.
        tile_size: tile size in pixels (default: the model's fixed H = W, else 512).
        overlap: default tile overlap (default: tile_size // 8).
        training_gsd_m: the ground sample distance the model was trained at (information).
        inputs: the model's two input names, pre's first, when they are not ``pre``, ``post``
            (they are renamed in the written model).
        architecture: a name for the network, recorded in the metadata.
        overwrite: replace an existing ``dst``.

    Returns the written path, its metadata and the checks that passed.
    """
    from ..outputs import check_outputs, claimed

    src, dst = Path(src), Path(dst)
    _check_arguments(src, dst, architecture, training_gsd_m)
    check_outputs({"output": dst}, {"model": src}, overwrite)
    sess, proto = _open(src)
    pre_name, post_name, shape = _graph_inputs(src, sess, inputs)
    renamed = (pre_name, post_name) != ("pre", "post")
    checks = [
        f"inputs {pre_name!r} -> pre, {post_name!r} -> post: {_shape(shape)} float32"
        + (" (renamed to pre, post)" if renamed else "")
    ]
    out_name = _graph_output(src, sess, classes)
    band_map = _bands(src, shape[1], bands, post_bands)
    c = len(band_map["pre"])
    norm = normalization if isinstance(normalization, Normalization) else parse_normalization(normalization, c, scale)
    if len(norm.mean) != c:
        raise InputError(
            f"{{normalization}} has {len(norm.mean)} means but the model reads {c} bands; give one per band",
            params=("normalization",),
        )
    tile, ov, fixed = _tile_and_overlap(src, (shape[2], shape[3]), tile_size, overlap)
    fixed_batch = _dim(shape[0])
    meta = PackageMeta(
        class_table=classes,
        bands=band_map,
        normalization=norm.to_dict(),
        tile_size=tile,
        default_overlap=ov,
        training_gsd_m=None if training_gsd_m is None else float(training_gsd_m),
        architecture=architecture,
    )
    meta = PackageMeta.from_json(meta.to_json(), str(dst), architecture=None)  # what we write must read back
    if renamed:
        _rename_inputs(src, proto, (pre_name, post_name))
    replaced = _attach_meta(proto, meta)

    first = fixed or -(-tile // PAD_MULTIPLE) * PAD_MULTIPLE
    sizes = [first]
    if fixed is None:
        small = max(PAD_MULTIPLE, (first // 2) // PAD_MULTIPLE * PAD_MULTIPLE)
        sizes.append(small if small != first else first + PAD_MULTIPLE)
    with claimed([dst]):
        tmp = temp_path(dst, create=False)
        try:
            _save(proto, tmp)
            checks += _run_checks(src, tmp, out_name, fixed_batch or 2, c, sizes, classes)
            if fixed is not None:
                checks.append(f"fixed size {fixed} x {fixed}: the tile size is {fixed} (predict cannot change it)")
            else:
                checks.append(f"dynamic H and W: any tile size runs (sizes padded to multiples of {PAD_MULTIPLE})")
            if fixed_batch is not None:
                checks.append(f"fixed batch of {fixed_batch}: tiles run {fixed_batch} at a time")
            try:
                load_onnx_model(tmp)  # the contract predict reads, on exactly what is written
            except InputError as exc:
                raise InputError(str(exc).replace(str(tmp), str(src))) from None
            if replaced:
                checks.append(f"replaced the s2m-geo metadata {src.name} carried")
            publish(tmp, dst)
        finally:
            discard(tmp)
    return ImportResult(dst, meta, checks, fixed, fixed_batch)


def _check_arguments(src: Path, dst: Path, architecture: str, training_gsd_m: float | None) -> None:
    if not src.is_file():
        raise InputError(f"{src}: ONNX model not found; check the path")
    if dst.suffix.lower() != ".onnx":
        raise InputError(
            f"{dst}: {{output}} must end in .onnx (that is how s2m-geo tells ONNX models from packages); "
            f"name it {dst.with_suffix('.onnx').name}",
            params=("output",),
        )
    if not isinstance(architecture, str) or not _ARCH_NAME.fullmatch(architecture) or architecture == ARCHITECTURE:
        raise InputError(
            f"{{architecture}} {architecture!r}: give a short name of letters, digits, '_', '.', '-' "
            f"(not {ARCHITECTURE!r}, which is s2m-geo's own package format)",
            params=("architecture",),
        )
    if training_gsd_m is not None and not (isinstance(training_gsd_m, (int, float)) and training_gsd_m > 0):
        raise InputError(f"{{gsd}} {training_gsd_m}: must be a positive number of metres", params=("gsd",))


def _open(src: Path) -> tuple[Any, Any]:
    """An onnxruntime session on ``src`` and its parsed graph."""
    import onnx

    try:
        return _ort_session(str(src)), onnx.load(str(src))
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise InputError(f"{src}: not a readable ONNX model ({msg}); export it again") from exc


def _save(proto: Any, path: Path) -> None:
    import onnx

    onnx.save(proto, str(path))


def _graph_inputs(src: Path, sess: Any, inputs: Sequence[str] | None) -> tuple[str, str, list[Any]]:
    """The inputs taking pre and post, and their common shape (fixed dims where either fixes one)."""
    ins = {i.name: i for i in sess.get_inputs()}
    pre_name, post_name = _input_names(src, list(ins), inputs)
    for role, name in (("pre", pre_name), ("post", post_name)):
        i = ins[name]
        what = repr(name) if name == role else f"{name!r} ({role})"
        if i.type != _INPUT_TYPE:
            raise InputError(
                f"{src}: input {what} is {i.type}, not float32; s2m-geo feeds normalised float32 "
                f"tiles: export the model with float inputs (cast inside the model if it needs another type)"
            )
        if len(i.shape) != 4:
            raise InputError(
                f"{src}: input {what} has shape {_shape(i.shape) or 'of unknown rank'}, not "
                f"N x C x H x W; s2m-geo needs {_CONTRACT}"
            )
    a, b = ins[pre_name].shape, ins[post_name].shape
    if any(_dim(x) is not None and _dim(y) is not None and x != y for x, y in zip(a, b, strict=True)):
        raise InputError(
            f"{src}: inputs {pre_name!r} ({_shape(a)}) and {post_name!r} ({_shape(b)}) differ; both scenes "
            f"are fed as tiles of one shape"
        )
    return pre_name, post_name, [x if _dim(x) is not None else y for x, y in zip(a, b, strict=True)]


def _graph_output(src: Path, sess: Any, classes: ClassTable) -> str:
    """The name of the first output, checked as far as its declared type and shape tell."""
    out = sess.get_outputs()[0]
    k1 = classes.num_classes
    if out.type not in _LOGIT_TYPES:
        raise InputError(
            f"{src}: first output {out.name!r} is {out.type}, not float logits; export the logits "
            f"(before any argmax), N x {k1} x H x W"
        )
    if len(out.shape) != 4:
        raise InputError(
            f"{src}: first output {out.name!r} has shape {_shape(out.shape) or 'of unknown rank'}, not "
            f"N x (K+1) x H x W; s2m-geo needs {_CONTRACT}"
        )
    if _dim(out.shape[1]) is not None and out.shape[1] != k1:
        raise InputError(
            f"{src}: the model returns {out.shape[1]} channels but the class table {classes.name!r} has "
            f"{k1} classes (K+1, id 0 = no change); pass {{classes}} a table with {out.shape[1]} classes",
            params=("classes",),
        )
    return str(out.name)


def _attach_meta(proto: Any, meta: PackageMeta) -> bool:
    """Put ``meta`` under ``"s2m_geo"`` in the model's metadata, keeping other entries; whether
    it replaced s2m-geo metadata the model already carried."""
    replaced = any(p.key == META_KEY for p in proto.metadata_props)
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != META_KEY]
    del proto.metadata_props[:]
    for key, value in kept:
        proto.metadata_props.add(key=key, value=value)
    proto.metadata_props.add(key=META_KEY, value=meta.to_json())
    return replaced


def _run_checks(
    src: Path, tmp: Path, out_name: str, batch: int, c: int, sizes: list[int], classes: ClassTable
) -> list[str]:
    """Run the written model on a random normalised pair of each size; what passed."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a failed run is reported as one line below, not in onnxruntime's log too
    run = ort.InferenceSession(str(tmp), sess_options=opts, providers=["CPUExecutionProvider"])
    k1 = classes.num_classes
    checks = []
    for n, size in enumerate(sizes):
        where = f"a random {_shape((batch, c, size, size))} pair"
        try:
            logits = _run_check(run, out_name, batch, c, size, seed=n)
        except Exception as exc:
            msg = " ".join(str(exc).replace(str(tmp), str(src)).split())[:300]
            if n == 0:
                hint, param = f"check that {{bands}} lists as many bands as the model takes ({c} now)", "bands"
            else:
                hint, param = f"export it with fixed H and W and pass {{tile_size}} {sizes[0]}", "tile_size"
            raise InputError(f"{src}: fails to run on {where} ({msg}); {hint}", params=(param,)) from None
        want = (batch, k1, size, size)
        if tuple(logits.shape) != want:
            raise InputError(
                f"{src}: returns {_shape(logits.shape)} logits on {where}, expected {_shape(want)} "
                f"(N x (K+1) x H x W, K+1 = the {k1} classes of {classes.name!r}); check {{classes}} "
                f"and that the model returns full-resolution logits",
                params=("classes",),
            )
        if not np.isfinite(logits).all():
            raise InputError(
                f"{src}: returns NaN or infinite logits on {where}; fix the model (e.g. a division "
                f"or log of its input) before importing it"
            )
        checks.append(f"ran on {where}: logits {_shape(logits.shape)}, all finite")
    return checks
