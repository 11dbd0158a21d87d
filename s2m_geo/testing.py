"""A kit for tests and benchmarks (not for predictions): tiny random models and stand-ins.

- :data:`TINY_MODEL_CONFIG` / :func:`tiny_model` — a randomly initialised S2M network small
  enough to run a scene in seconds (a 4-layer, 32-wide ViT), as a real model package;
- :class:`BrightBandModel` — a stand-in runner with no network: class ``class_id`` where band
  1 of one epoch is bright, else no change, so every output pixel can be traced to the input
  pixel it came from;
- :func:`difference_onnx` — a two-input ONNX model that costs next to nothing (the absolute
  difference of the epochs), so a run measures the pipeline around the model;
- :func:`mosaic_vrt` — a large VRT whose rest is nodata around scenes placed in it (a
  mosaic's footprints in a nodata frame);
- :func:`changes_from_label` — the ``changes`` and ``scenes`` layers of a label raster, as
  ``predict`` would write them for a perfect model (questions for ``s2m-geo ask``);
- :func:`run_cli` / :func:`assert_fails_well` — a command run in-process, and the check of
  the error contract (exit 2, one line, nothing at the output).

Used by ``tests/``, ``tests_qgis/`` (through the venv's Python) and ``benchmarks/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .classes import ClassTable, load_class_table

#: The ``model:`` section of a tiny S2M network (also usable in a training config).
TINY_MODEL_CONFIG: dict[str, Any] = {
    "backbone": "vit_small_patch16_dinov3",
    "backbone_kwargs": {"depth": 4, "embed_dim": 32, "num_heads": 2},
    "decoder_channels": 16,
    "attn_heads": 2,
    "align_heads": 2,
}


def tiny_model(
    path: str | Path,
    *,
    tile_size: int = 64,
    overlap: int = 16,
    seed: int = 0,
    table: ClassTable | None = None,
    **meta: Any,
) -> Path:
    """Write a random tiny S2M model package to ``path`` (same seed, same weights)."""
    import torch

    from .model import PackageMeta, build_model, save_package

    torch.manual_seed(seed)
    model = build_model({**TINY_MODEL_CONFIG, "text_dim": 32})
    table = table or load_class_table()
    pkg = PackageMeta(class_table=table, tile_size=tile_size, default_overlap=overlap, **meta)
    return save_package(path, model, pkg)


class BrightBandModel:
    """Stand-in runner: class ``class_id`` where band 1 of the ``which`` epoch is above
    ``threshold``, else class 0 (probabilities that blend like a model's)."""

    name = "bright-band"

    def __init__(
        self,
        which: str = "pre",
        threshold: float = 150.0,
        class_id: int = 1,
        confidence: float = 0.9,
        base: float = 0.01,
    ):
        from .model import PackageMeta

        self.meta = PackageMeta(class_table=load_class_table(), tile_size=64, default_overlap=16)
        self.num_classes = self.meta.class_table.num_classes
        self.which, self.threshold, self.class_id = which, threshold, class_id
        self.confidence, self.base = confidence, base

    def probabilities(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        x = (pre if self.which == "pre" else post)[:, 0]
        p = np.full((x.shape[0], self.num_classes, *x.shape[1:]), self.base, np.float32)
        p[:, self.class_id] += (x > self.threshold) * self.confidence
        p[:, 0] += (x <= self.threshold) * self.confidence
        out: np.ndarray = p / p.sum(1, keepdims=True)
        return out


def difference_onnx(
    path: str | Path, *, tile_size: int = 512, overlap: int = 64, table: ClassTable | None = None
) -> Path:
    """Write a two-input ONNX change model whose logits are a linear function of the mean
    absolute difference of ``pre`` and ``post`` (class 1 where they differ by more than 1.5
    normalised units, about 85 of 255, else 0), with the s2m-geo metadata: a model that costs
    next to nothing, for benchmarks of the pipeline."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .model import PackageMeta
    from .model.package import META_KEY

    table = table or load_class_table()
    k1 = table.num_classes
    weight = np.zeros((1, k1, 1, 1), np.float32)
    weight[0, 1] = 4.0
    bias = np.zeros((1, k1, 1, 1), np.float32)
    bias[0, 0] = 6.0
    bias[0, 2:] = -1.0
    dims = ["n", 3, "h", "w"]
    graph = helper.make_graph(
        [
            helper.make_node("Sub", ["pre", "post"], ["d"]),
            helper.make_node("Abs", ["d"], ["a"]),
            helper.make_node("ReduceMean", ["a"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Mul", ["m", "weight"], ["s"]),
            helper.make_node("Add", ["s", "bias"], ["logits"]),
        ],
        "difference",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("pre", "post")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", k1, "h", "w"])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = PackageMeta(class_table=table, tile_size=tile_size, default_overlap=overlap, architecture="abs-difference")
    model.metadata_props.add(key=META_KEY, value=meta.to_json())
    onnx.save(model, str(path))
    return Path(path)


def mosaic_vrt(
    sources: list[tuple[str | Path, int, int]], dst: str | Path, size: int, height: int | None = None
) -> Path:
    """Write a ``size`` x ``size`` VRT (``size`` wide and ``height`` tall when given) holding
    each ``(file, row, col)`` with its top-left pixel at that offset, nodata 0 elsewhere (every
    band of the first file; same band count and uint8 assumed), georeferenced as the first file
    shifted to its offset. A file may appear more than once."""
    from xml.sax.saxutils import escape

    import rasterio

    with rasterio.open(sources[0][0]) as ds:
        t, crs, count = ds.transform, ds.crs.to_wkt(), ds.count
    _, r0, c0 = sources[0]
    gt = ", ".join(map(repr, (t.c - c0 * t.a, t.a, 0.0, t.f - r0 * t.e, 0.0, t.e)))
    shapes = []
    for src, _, _ in sources:
        with rasterio.open(src) as ds:
            shapes.append((ds.width, ds.height))
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><NoDataValue>0</NoDataValue>'
        + "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(Path(src).resolve()))}</SourceFilename>'
            f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{col}" yOff="{row}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            for (src, row, col), (w, h) in zip(sources, shapes)
        )
        + "</VRTRasterBand>"
        for b in range(1, count + 1)
    )
    out = Path(dst)
    out.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size if height is None else height}">'
        f"<SRS>{escape(crs)}</SRS>"
        f"<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>",
        encoding="utf-8",
    )
    return out


def striped_copy(src: str | Path, dst: str | Path, rows: int | None = 16) -> Path:
    """``src``'s ``pre.tif`` and ``post.tif`` copied into ``dst`` as deflated GeoTIFFs stored in
    strips of ``rows`` rows (None: GDAL's default, what ``gdal_translate`` writes without
    ``-co TILED=YES``; one row at 4096 px of RGB) instead of tiles; files already there are kept."""
    from rasterio.shutil import copy as rio_copy

    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("pre.tif", "post.tif"):
        if not (out / name).is_file():
            opts: dict[str, Any] = {"blockysize": rows} if rows else {}
            rio_copy(Path(src) / name, out / name, driver="GTiff", tiled=False, compress="deflate", **opts)
    return out


def changes_from_label(label: str | Path, output: str | Path, table: ClassTable | None = None) -> Path:
    """Write the described change polygons of a class raster (e.g. a synthetic scene's
    ``label.tif``) to ``output``, as ``predict`` writes them: one polygon per connected region
    of one class, confidence 1."""
    import rasterio

    from .describe.geo import GeoFrame
    from .vector.output import ChangeCollector, write_vectors
    from .vector.vectorize import vectorize

    table = table or load_class_table()
    with rasterio.open(label) as ds:
        data, crs, transform = ds.read(1), ds.crs, ds.transform
    frame = GeoFrame.from_grid(crs, transform, data.shape[1], data.shape[0])
    collector = ChangeCollector(frame, table, Path(label).stem, "label")
    for region in vectorize(data, np.ones(data.shape, np.float32), transform):
        if region.class_id:
            collector(region)
    write_vectors(output, collector, label, label)
    return Path(output)


def cli_command(*args: object) -> list[str]:
    """The argv that runs ``s2m-geo ARGS...`` with this Python (for subprocess tests)."""
    import sys

    return [sys.executable, "-m", "s2m_geo.cli", *map(str, args)]


def run_cli(*args: object) -> Any:
    """``s2m-geo ARGS...`` run in this process (a ``click.testing.Result``)."""
    from click.testing import CliRunner

    from .cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_fails_well(res: Any, *needles: object, out: Path | None = None) -> None:
    """The error contract (docs/errors.md): exit 2, one line on stderr holding every needle,
    and nothing at ``out`` — not the file, not a temporary of it."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("s2m-geo: error: ", "Error: ")), res.stderr
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
