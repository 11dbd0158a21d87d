"""Real-imagery change synthesis ("realmix"): labelled change pairs from single-date real tiles.

In the spirit of ChangeStar (single-temporal supervised learning: two unrelated or identical
views paired as "no change") and Changen / copy-paste augmentation (change objects composited
into real scenes), every pair starts from ONE real image ``I``:

- *identical* pairs: ``pre == post`` exactly (the same nuisance on both), label all 0;
- *no-change* pairs: ``pre = pseudo_change(I)``, ``post = pseudo_change(I)`` drawn independently
  (gain, gamma, saturation, blur, haze, noise, sub-pixel misregistration, JPEG), label all 0;
- *distractor* pairs: harmless real-world change (cars moved, seasonal vegetation colour, a
  cloud/tree shadow), label all 0;
- *change* pairs: 1-6 objects composited into ``I`` with feathered edges and shadows, then the
  nuisance is applied to each epoch AFTER compositing, so object pixels get the same blur, noise
  and colour shift as the real background. Objects: new buildings (roofs cut from other real
  tiles or rendered hip/gable/flat roofs in real tones), destroyed buildings (a pasted building,
  or a homogeneous real roof area, turned to rubble), new refugee camps (small tents on cleared
  ground), destroyed fields (crop rows -> scarred soil), destroyed / new greenhouses.

Labels use the class ids of a class table by name (``building_destroyed`` ...); a two-class
table gets every change as id 1. The array functions (:func:`pseudo_change`,
:func:`synthesize_pair`) are pure functions of their inputs and a ``numpy`` generator;
:func:`write_realmix` writes a LEVIR-layout folder (``A/``, ``B/``, ``label/``) atomically and
skips the work when a complete folder with the same manifest exists.

Images are channel-last ``(H, W, 3)`` uint8 arrays throughout.
"""

from __future__ import annotations

from .draw import Rect
from .folder import MANIFEST, VERSION, make_pair, pair_rng, write_realmix
from .images import DONOR_PARTS, IMAGE_SUFFIXES, LABEL_PARTS, ImagePool, find_images
from .nuisance import Array, pseudo_change
from .pair import (
    CHANGE_NAMES,
    DEFAULT_IDS,
    KIND_WEIGHTS,
    OBJECT_WEIGHTS,
    PAIR_KINDS,
    RealPair,
    class_ids,
    synthesize_pair,
)

__all__ = [
    "Array",
    "CHANGE_NAMES",
    "DEFAULT_IDS",
    "DONOR_PARTS",
    "IMAGE_SUFFIXES",
    "ImagePool",
    "KIND_WEIGHTS",
    "LABEL_PARTS",
    "MANIFEST",
    "OBJECT_WEIGHTS",
    "PAIR_KINDS",
    "Rect",
    "RealPair",
    "VERSION",
    "class_ids",
    "find_images",
    "make_pair",
    "pair_rng",
    "pseudo_change",
    "synthesize_pair",
    "write_realmix",
]
