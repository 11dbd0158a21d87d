"""Answers to a :class:`~s2m_geo.ask.parse.Query` over the rows of a ``changes`` layer (pure).

:func:`answer` picks the rows the query names — class (category and change type), quantity,
direction (the ``direction`` field: the S2M 3×3 rule in the true-north frame), limits on
``area_m2`` and ``distance_m``, then ``largest``/``smallest`` — and says what it found in an
S2M-style sentence: "There are 12 destroyed buildings in the northeast region, 3,400 m² in
all." Rows are plain mappings with the fields of docs/design.md §3.4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..classes import ClassTable
from ..describe.rules import DIRECTIONS
from .parse import Condition, Query


@dataclass(frozen=True)
class Answer:
    """What a query found: the matching rows (by position), their number and ground area,
    the direction breakdown, the S2M-style sentence and, for ``which``, one line per row."""

    query: Query
    rows: tuple[int, ...]  # positions in the input, in answer order
    count: int
    area_m2: float
    by_direction: tuple[tuple[str, int, float], ...]  # (direction, count, area), most first
    sentence: str
    lines: tuple[str, ...] = ()


def format_area(m2: float, unit: str = "m²") -> str:
    """An area as people write it: m² below a hectare, ha below a km², then km²
    (``unit`` other than m² — e.g. px for image terms — is printed as is)."""
    if unit != "m²":
        return f"{m2:,.0f} {unit}"
    if m2 < 1e4:
        return f"{m2:,.0f} m²"
    if m2 < 1e6:
        return f"{_decimals(m2 / 1e4)} ha"
    return f"{_decimals(m2 / 1e6)} km²"


def _decimals(x: float) -> str:
    """Two decimals at most, without trailing zeros: 2.5, 1, 12.34."""
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def format_distance(m: float) -> str:
    """A distance in m below a kilometre, else km."""
    return f"{m:,.0f} m" if m < 1000 else f"{_decimals(m / 1000)} km"


def _number(x: Any) -> float | None:
    """A finite float, or None for missing values (None, NaN)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _keeps(q: Query, pairs: set[tuple[str, str]], row: Mapping[str, Any]) -> bool:
    if (str(row["category"]), str(row["change_type"])) not in pairs:
        return False
    if q.quantities and row["quantity"] not in q.quantities:
        return False
    if q.directions and row["direction"] not in q.directions:
        return False
    for c in q.conditions:
        v = _number(row[c.field])
        if v is None or not c.holds(v):
            return False
    return True


def select(q: Query, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Positions of the rows the query names, ranked (and cut) when it asks for the largest
    or smallest; otherwise in input order."""
    pairs = set(q.pairs)
    keep = [i for i, row in enumerate(rows) if _keeps(q, pairs, row)]
    if q.rank is not None:
        keep.sort(key=lambda i: float(rows[i]["area_m2"]), reverse=q.rank == "largest")
        keep = keep[: q.limit or 1]
    return keep


# --- words ----------------------------------------------------------------------------------------


def _join(words: Sequence[str], last: str = "or") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def things(q: Query, table: ClassTable, n: int) -> str:
    """What the query counts, agreed with ``n``: "destroyed buildings", "change regions"."""
    classes = [table[cid] for cid in q.class_ids]
    types = _join(list(q.change_types)) + " " if q.change_types else ""
    if q.categories:
        nouns = [
            next(c.singular_noun if n == 1 else c.plural_noun for c in classes if c.category == cat)
            for cat in q.categories
        ]
        noun = _join(nouns)
    else:
        noun = "change region" if n == 1 else "change regions"
    return types + noun


def place(directions: Sequence[str]) -> str:
    """ "in the northeast region", "in the center of the image", "in the north or east regions"."""
    if not directions:
        return ""
    if list(directions) == ["center"]:
        return "in the center of the image"
    if len(directions) == 1:
        return f"in the {directions[0]} region"
    return f"in the {_join(list(directions))} regions"


def _condition(c: Condition, unit: str) -> str:
    if c.field == "area_m2":
        word = {">": "larger than", ">=": "of at least", "<": "smaller than", "<=": "of at most"}[c.op]
        return f"{word} {format_area(c.value, unit)}"
    word = {"<=": "within", "<": "closer than", ">": "farther than", ">=": "at least"}[c.op]
    return f"{word} {format_distance(c.value)} of the centre"


def _subject(q: Query, table: ClassTable, n: int, unit: str) -> str:
    """'destroyed buildings larger than 500 m² in the northeast region' (no number)."""
    if q.quantities:  # a polygon's quantity says how much of its class it holds (S2M's "how many")
        single = q.quantities == ("a single",)
        head = f"region{'s' * (n != 1)} of {_join(list(q.quantities))} {things(q, table, 1 if single else 2)}"
    else:
        head = things(q, table, n)
    parts = [_condition(c, unit) for c in q.conditions] + [place(q.directions)]
    return " ".join([head, *[p for p in parts if p]])


def _count_sentence(q: Query, table: ClassTable, n: int, area: float, unit: str) -> str:
    if n == 0:
        return f"There are no {_subject(q, table, 2, unit)}."
    if n == 1:
        return f"There is 1 {_subject(q, table, 1, unit)}, {format_area(area, unit)}."
    return f"There are {n:,} {_subject(q, table, n, unit)}, {format_area(area, unit)} in all."


def _area_sentence(q: Query, table: ClassTable, n: int, area: float, unit: str) -> str:
    if n == 0:
        return f"There are no {_subject(q, table, 2, unit)}, so no area ({format_area(0.0, unit)})."
    subject = _subject(q, table, 2, unit)
    return f"{subject[:1].upper()}{subject[1:]} cover {format_area(area, unit)} in all ({n:,} polygon{'s' * (n != 1)})."


def _where_sentence(q: Query, table: ClassTable, n: int, groups: Sequence[tuple[str, int, float]], unit: str) -> str:
    if n == 0:
        return f"There are no {_subject(q, table, 2, unit)}."
    parts = [f"{k:,} {place([d])} ({format_area(a, unit)})" for d, k, a in groups]
    return f"There {'is' if n == 1 else 'are'} {n:,} {_subject(q, table, n, unit)}: {_join(parts, 'and')}."


def _ranked_sentence(q: Query, table: ClassTable, picked: Sequence[Mapping[str, Any]], unit: str) -> str:
    if not picked:
        return f"There are no {_subject(q, table, 2, unit)}."
    if len(picked) == 1:
        size = format_area(float(picked[0]["area_m2"]), unit)
        return f"The {q.rank} {_subject(q, table, 1, unit)} is {size}, {_where(picked[0])}."
    areas = _join([format_area(float(r["area_m2"]), unit) for r in picked], "and")
    return f"The {len(picked)} {q.rank} {_subject(q, table, len(picked), unit)} are {areas}."


def _where(row: Mapping[str, Any]) -> str:
    distance = _number(row.get("distance_m"))
    at = place([str(row["direction"])])
    return at if distance is None else f"{at}, {format_distance(distance)} from the centre"


def _line(position: int, row: Mapping[str, Any], unit: str) -> str:
    ident = row.get("fid", position + 1)
    return (
        f"{ident}: {row['change_type']} {row['category']}, {format_area(float(row['area_m2']), unit)}, "
        f"{_where(row)} -- {row.get('description', '')}".rstrip(" -")
    )


def answer(q: Query, rows: Sequence[Mapping[str, Any]], table: ClassTable, area_unit: str = "m²") -> Answer:
    """Answer ``q`` over ``rows`` (mappings with the ``changes`` fields; an optional ``fid``
    names a row in ``which`` lines, else its 1-based position). ``area_unit``: what
    ``area_m2`` holds (``px`` for a layer in image terms)."""
    picked = select(q, rows)
    n = len(picked)
    area = float(sum(float(rows[i]["area_m2"]) for i in picked))
    counts: dict[str, list[float]] = {}
    for i in picked:
        s = counts.setdefault(str(rows[i]["direction"]), [0, 0.0])
        s[0] += 1
        s[1] += float(rows[i]["area_m2"])
    order = {d: k for k, d in enumerate(DIRECTIONS)}
    groups = tuple(
        (d, int(s[0]), s[1]) for d, s in sorted(counts.items(), key=lambda kv: (-kv[1][0], order.get(kv[0], 99)))
    )
    lines: tuple[str, ...] = ()
    if q.intent == "area":
        text = _area_sentence(q, table, n, area, area_unit)
    elif q.intent == "where":
        text = _where_sentence(q, table, n, groups, area_unit)
    elif q.intent == "which":
        text = (
            _ranked_sentence(q, table, [rows[i] for i in picked], area_unit)
            if q.rank
            else _count_sentence(q, table, n, area, area_unit)
        )
        lines = tuple(_line(i, rows[i], area_unit) for i in picked)
    else:
        text = _count_sentence(q, table, n, area, area_unit)
    return Answer(q, tuple(picked), n, area, groups, text, lines)
