"""One labelled pair from one real tile: the pair kinds and their weights, the change classes
and their weights, :class:`RealPair`, :func:`synthesize_pair` and the class ids of a table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...classes import ClassTable
from ...errors import InputError
from .distractors import add_distractors
from .draw import DrawContext, luminance
from .nuisance import pseudo_change
from .objects import CHANGE_OBJECTS

CHANGE_NAMES = (
    "building_destroyed",
    "building_new",
    "refugee_camp_new",
    "agricultural_land_destroyed",
    "greenhouse_destroyed",
    "greenhouse_new",
)
DEFAULT_IDS: dict[str, int] = {n: i + 1 for i, n in enumerate(CHANGE_NAMES)}  # gaza_change
PAIR_KINDS = ("identical", "nochange", "distractor", "change")
KIND_WEIGHTS = (0.07, 0.17, 0.10, 0.66)  # 34 % of pairs without any change
OBJECT_WEIGHTS = {
    "building_destroyed": 0.27,
    "building_new": 0.27,
    "refugee_camp_new": 0.11,
    "agricultural_land_destroyed": 0.11,
    "greenhouse_destroyed": 0.12,
    "greenhouse_new": 0.12,
}
_BIG = {"refugee_camp_new", "agricultural_land_destroyed", "greenhouse_destroyed", "greenhouse_new"}


Array = np.ndarray


@dataclass
class RealPair:
    """One synthesised pair: ``pre``/``post`` (H, W, 3) uint8, ``label`` (H, W) uint8 class ids."""

    pre: Array
    post: Array
    label: Array
    kind: str
    objects: list[str] = field(default_factory=list)


def _to8(x: Array) -> Array:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def synthesize_pair(
    background: Array,
    rng: np.random.Generator,
    donors: Sequence[Array] = (),
    ids: Mapping[str, int] | None = None,
    kind: str | None = None,
    nuisance: bool = True,
    max_objects: int = 6,
) -> RealPair:
    """Make one labelled pair from a real ``(H, W, 3)`` uint8 tile.

    ``donors``: other real tiles that roofs may be cut from (and grain borrowed from);
    ``ids``: class id per change name (default gaza_change; names left out are not drawn);
    ``kind``: one of :data:`PAIR_KINDS` (default: drawn with :data:`KIND_WEIGHTS`);
    ``nuisance=False`` skips :func:`pseudo_change` (tests: the clean composites).
    """
    bg8 = np.asarray(background)
    if bg8.ndim != 3 or bg8.shape[2] < 3:
        raise ValueError(f"background must be (H, W, 3), got {bg8.shape}")
    bg = bg8[..., :3].astype(np.float32)
    ids = dict(DEFAULT_IDS if ids is None else ids)
    names = [n for n in CHANGE_NAMES if n in ids]
    if kind is None:
        kind = PAIR_KINDS[int(rng.choice(len(PAIR_KINDS), p=KIND_WEIGHTS))]
    if kind not in PAIR_KINDS:
        raise ValueError(f"unknown pair kind {kind!r}; one of {PAIR_KINDS}")
    if kind == "change" and not names:
        kind = "nochange"
    h, w = bg.shape[:2]
    label = np.zeros((h, w), np.uint8)
    finish = (lambda a: pseudo_change(a, rng)) if nuisance else (lambda a: a)
    if kind == "identical":
        pre = finish(_to8(bg))
        return RealPair(pre, pre.copy(), label, kind)
    theta = rng.uniform(0, 2 * np.pi)
    ctx = DrawContext(
        rng=rng,
        bg=bg,
        donors=[np.asarray(d)[..., :3] for d in donors],
        sun=(math.sin(theta), math.cos(theta)),
        shadow_dark=float(rng.uniform(0.35, 0.6)),
        occupied=np.zeros((h, w), bool),
        tone=float(np.clip((luminance(bg).mean() / 125.0) ** 0.3, 0.85, 1.12)),
    )
    pre, post = bg.copy(), bg.copy()
    objects: list[str] = []
    if kind == "distractor" or (kind == "change" and rng.random() < 0.35):
        add_distractors(ctx, pre, post)
    if kind == "change":
        weights = np.array([OBJECT_WEIGHTS[n] for n in names])
        n_obj = 1 + int(rng.choice(max_objects, p=_count_weights(max_objects)))
        big = 0
        for _ in range(n_obj):
            name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            if name in _BIG:
                if big >= 2:
                    continue
                big += 1
            for _ in range(3):  # a few tries: an object that would touch an earlier one is redrawn
                if CHANGE_OBJECTS[name](ctx, pre, post, label, int(ids[name])):
                    objects.append(name)
                    break
        if not objects:  # nothing fitted: it is a no-change pair
            kind = "nochange"
    return RealPair(finish(_to8(pre)), finish(_to8(post)), label, kind, objects)


def _count_weights(n: int) -> Array:
    p = np.array([1.0 / (k + 1.5) for k in range(n)])
    return p / p.sum()


def class_ids(table: ClassTable) -> dict[str, int]:
    """Class id per change name for a table: by name, or every change as 1 in a two-class table."""
    if table.num_classes == 2:
        return {n: 1 for n in CHANGE_NAMES}
    by_name = {c.name: c.id for c in table.classes}
    ids = {n: by_name[n] for n in CHANGE_NAMES if n in by_name}
    if not ids:
        raise InputError(
            f"class table '{table.name}' has none of the realmix classes {list(CHANGE_NAMES)}; "
            f"use gaza_change (or a two-class table)"
        )
    return ids
