"""S2M sentences: five fixed templates that turn a quadruple into English.

The paper uses five fixed templates whose exact wording is not public; these five follow
its example ("There are several destroyed buildings in the northeast region."). Each has a
regional form and a neutral form for the ``center`` direction. Agreement: the quantity
``a single`` takes a singular noun and verb (``is``/``appears``); ``a few``, ``several`` and
``multiple`` take the plural. The quantity words carry their own article, and the change
type is used as an adjective before the noun ("several newly built greenhouses").
"""

from __future__ import annotations

import random

import numpy as np

from ..classes import ClassTable
from .rules import Quadruple, quadruples_from_mask

Rng = random.Random | np.random.Generator

#: (regional form, center form) per template. Fields: ``quantity`` (lower case),
#: ``Quantity`` (capitalised), ``things`` (change type + noun, number-agreed), ``be``
#: (is/are), ``appear`` (appears/appear), ``direction``.
TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "There {be} {quantity} {things} in the {direction} region.",
        "There {be} {quantity} {things} in the center of the image.",
    ),
    (
        "{Quantity} {things} {be} located in the {direction} part of the image.",
        "{Quantity} {things} {be} located in the central part of the image.",
    ),
    (
        "In the {direction} region, there {be} {quantity} {things}.",
        "In the center of the image, there {be} {quantity} {things}.",
    ),
    (
        "The {direction} region contains {quantity} {things}.",
        "The central region of the image contains {quantity} {things}.",
    ),
    (
        "{Quantity} {things} {appear} in the {direction} area of the image.",
        "{Quantity} {things} {appear} in the middle of the image.",
    ),
)
NUM_TEMPLATES = len(TEMPLATES)

#: The caption of a mask with no change pixels.
NO_CHANGE_SENTENCE = "There is no change in the image."


def pick_template(rng: Rng | None) -> int:
    """A template index drawn from ``rng`` (0 when ``rng`` is None)."""
    if rng is None:
        return 0
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(NUM_TEMPLATES))
    if isinstance(rng, random.Random):
        return rng.randrange(NUM_TEMPLATES)
    raise TypeError(f"rng must be random.Random or numpy.random.Generator, got {type(rng).__name__}")


def sentence(q: Quadruple, table: ClassTable, template: int | None = None, rng: Rng | None = None) -> str:
    """The S2M sentence for quadruple ``q``.

    ``template`` picks one of :data:`TEMPLATES` (0..4); when None it is drawn from ``rng``
    (a seeded rng gives a deterministic choice), or 0 when ``rng`` is None too.
    Nouns come from ``table[q.class_id]``.
    """
    if template is None:
        template = pick_template(rng)
    if not 0 <= template < NUM_TEMPLATES:
        raise ValueError(f"template must be 0..{NUM_TEMPLATES - 1}, got {template}")
    cls = table[q.class_id]
    singular = q.quantity == "a single"
    noun = cls.singular_noun if singular else cls.plural_noun
    regional, central = TEMPLATES[template]
    fmt = central if q.direction == "center" else regional
    return fmt.format(
        quantity=q.quantity,
        Quantity=q.quantity[:1].upper() + q.quantity[1:],
        things=f"{q.change_type} {noun}",
        be="is" if singular else "are",
        appear="appears" if singular else "appear",
        direction=q.direction,
    )


def describe_mask(mask: np.ndarray, table: ClassTable, rng: Rng | None = None) -> list[tuple[Quadruple, str]]:
    """(quadruple, sentence) for each change class present in ``mask``, by class id.

    With ``rng`` each sentence draws its own template in class-id order; without it every
    sentence uses template 0.
    """
    return [(q, sentence(q, table, rng=rng)) for q in quadruples_from_mask(mask, table)]


def mask_caption(mask: np.ndarray, table: ClassTable, rng: Rng | None = None) -> str:
    """All sentences of :func:`describe_mask` joined by spaces (training text).

    A mask without change pixels gives :data:`NO_CHANGE_SENTENCE`.
    """
    parts = [s for _, s in describe_mask(mask, table, rng=rng)]
    return " ".join(parts) if parts else NO_CHANGE_SENTENCE
