"""Writing a LEVIR-layout folder (``A/``, ``B/``, ``label/``) of realmix pairs with its
manifest: the generator of each pair, one pair, the whole set."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ... import atomic
from ...atomic import atomic_path
from ...classes import ClassTable, load_class_table
from ...errors import InputError
from .images import DONOR_PARTS, ImagePool, find_images
from .pair import RealPair, class_ids, synthesize_pair

VERSION = 1


MANIFEST = "realmix.json"


Array = np.ndarray


def _write_png(path: Path, arr: Array, palette: list[int] | None = None) -> None:
    """Write a PNG under a temporary name in the same folder, then rename it into place."""
    from PIL import Image

    im = Image.fromarray(arr)
    if palette is not None:  # class ids as palette indices: readers see ids, viewers colours
        im = im.convert("P")
        im.putpalette(palette)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG", compress_level=3)


def _palette(table: ClassTable) -> list[int]:
    pal = [0] * 768
    for c in table.classes:
        if 0 <= c.id < 256:
            pal[3 * c.id : 3 * c.id + 3] = list(c.rgb)
    return pal


def _images_digest(found: Sequence[tuple[Path, Path]]) -> str:
    h = hashlib.sha256()
    for root, p in found:
        h.update(f"{p.relative_to(root).as_posix()}|{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def pair_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of pair ``index`` of a set: independent of the order pairs are made in."""
    return np.random.default_rng([seed & 0xFFFFFFFF, 0x5EA1, index])


def make_pair(pool: ImagePool, index: int, seed: int, donors: Sequence[int], ids: Mapping[str, int]) -> RealPair:
    """Pair ``index`` of a realmix set: a background crop, two donor crops, the synthesis."""
    rng = pair_rng(seed, index)
    bg = pool.crop(int(rng.integers(len(pool))), rng)
    picks = [donors[int(rng.integers(len(donors)))] for _ in range(2)] if donors else []
    return synthesize_pair(bg, rng, [pool.crop(i, rng) for i in picks], ids)


def write_realmix(
    out_dir: str | Path,
    images: str | Path | Sequence[str | Path],
    count: int,
    seed: int = 0,
    size: int = 256,
    table: ClassTable | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``count`` pairs as ``out_dir/A/*.png``, ``B/*.png``, ``label/*.png`` (LEVIR layout;
    labels are paletted PNGs whose values are class ids) and a manifest ``realmix.json``.

    Each file is written under a temporary name and renamed; the manifest goes last, so a
    folder is complete exactly when its manifest matches. A complete folder made with the same
    version, seed, count, size, classes and image list is left as it is. Returns ``out_dir``.
    """
    if count < 1:
        raise InputError(f"realmix: count must be >= 1, got {count}")
    if size < 32:
        raise InputError(f"realmix: size must be >= 32, got {size}")
    table = table or load_class_table()
    ids = class_ids(table)
    found = find_images(images)
    out = Path(out_dir)
    names = [f"realmix{seed}_{i:05d}" for i in range(count)]
    key = {
        "version": VERSION,
        "seed": int(seed),
        "count": int(count),
        "size": int(size),
        "classes": table.name,
        "ids": ids,
        "images": _images_digest(found),
    }
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("key") == key and all((out / d / f"{n}.png").is_file() for d in ("A", "B", "label") for n in names):
            return out
    dirs = {d: out / d for d in ("A", "B", "label")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    pool = ImagePool([p for _, p in found], size)
    donors = [i for i, p in enumerate(pool.files) if any(k in p.as_posix().lower() for k in DONOR_PARTS)]
    donors = donors or list(range(len(pool)))
    palette = _palette(table)
    pixels = np.zeros(256, np.int64)
    kinds: dict[str, int] = {}
    objects: dict[str, int] = {}
    for i, name in enumerate(names):
        pair = make_pair(pool, i, seed, donors, ids)
        _write_png(dirs["A"] / f"{name}.png", pair.pre)
        _write_png(dirs["B"] / f"{name}.png", pair.post)
        _write_png(dirs["label"] / f"{name}.png", pair.label, palette)
        pixels += np.bincount(pair.label.ravel(), minlength=256)
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
        for o in pair.objects:
            objects[o] = objects.get(o, 0) + 1
        if progress:
            progress(i + 1, count)
    keep = set(names)
    for d in dirs.values():  # pairs of an earlier, larger set
        for p in d.glob("realmix*.png"):
            if p.stem not in keep:
                p.unlink()
    total = int(pixels.sum())
    stats = {
        "kinds": kinds,
        "objects": objects,
        "class_pixel_fraction": {str(k): round(int(pixels[k]) / total, 6) for k in range(256) if pixels[k]},
    }
    body = json.dumps(
        {"key": key, "images": [str(r) for r in dict.fromkeys(r for r, _ in found)], "stats": stats}, indent=1
    )
    atomic.write_text(manifest, body)
    return out
