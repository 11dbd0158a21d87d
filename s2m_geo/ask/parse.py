"""Questions about change polygons, read with the class table's own words (pure).

:func:`parse_question` turns ``"how many destroyed houses are in the north-east?"`` into a
:class:`Query`. The words it knows, and nothing else:

* the class table's categories, their nouns and plurals, its change types, and the
  ``synonyms`` the table declares (plurals of category synonyms follow from the singular);
* the S2M quantity words (``a single``, ``a few``, ``several``, ``multiple``: a filter on the
  ``quantity`` field) and the nine directions (eight compass words, ``north-east`` and
  ``north east`` spellings, ``northern`` …, and ``center``/``centre``/``central``/``middle``);
* what is asked: ``how many`` (the default), ``how much``/``how much area``/``total area``,
  ``where``/``which direction``, ``which``/``list``/``show``, ``largest``/``smallest``
  (``the 3 largest``);
* limits: ``more than``/``over``/``larger than``/``at least``/``less than``/``under``/… a
  number with an area unit (``500 m2``, ``500 m²``, ``0.5 ha``, ``1 km²``) for ``area_m2``, or
  with a length unit (``800 m``, ``2 km``) and ``of/from the centre`` — or ``within``,
  ``beyond`` — for ``distance_m`` from the scene centre;
* words that carry no meaning here (``are there``, ``the``, ``in``, ``region``, ``image``,
  punctuation, …), which is also what makes every sentence of ``describe/templates.py``
  readable: it parses back to its own quadruple.

Anything else raises :class:`~s2m_geo.errors.InputError` naming the words it does not know
and listing those it does; a word that could mean two things the rest of the question does
not tell apart is refused too. Nothing is guessed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..classes import ClassTable, pluralize
from ..describe.rules import DIRECTIONS, QUANTITIES
from ..errors import InputError

INTENTS = ("count", "area", "where", "which")

# --- the built-in words ---------------------------------------------------------------------------

_FILLERS = (
    "a an the is are was were be been being there there's here do does did has have had any all some "
    "in on at of to for by with and or also please me us i we you can could would tell give see find "
    "what that this these those it its total in_all image picture scene region regions part parts area areas "
    "zone located lie lies lying contain contains containing appear appears appearing cover covers covered "
    "exist exists found currently now altogether overall"
).split()
_GENERIC = ("change", "changes", "thing", "things", "object", "objects", "feature", "features", "polygon", "polygons")

_INTENT_WORDS: dict[str, str] = {
    "how many": "count",
    "number of": "count",
    "count": "count",
    "how much": "area",
    "how much area": "area",
    "how much ground": "area",
    "total area": "area",
    "what area": "area",
    "where": "where",
    "where's": "where",
    "which direction": "where",
    "what direction": "where",
    "which directions": "where",
    "which part": "where",
    "which parts": "where",
    "which": "which",
    "list": "which",
    "show": "which",
    "show me": "which",
}
_RANK_WORDS = {"largest": "largest", "biggest": "largest", "smallest": "smallest"}

_DIRECTION_WORDS: dict[str, str] = {"centre": "center", "center": "center", "central": "center", "middle": "center"}
for _d in DIRECTIONS:
    if _d == "center":
        continue
    _DIRECTION_WORDS[_d] = _d
    _DIRECTION_WORDS[_d + "ern"] = _d  # northern, northeastern
    for _a, _b in (("north", "east"), ("north", "west"), ("south", "east"), ("south", "west")):
        if _d == _a + _b:
            _DIRECTION_WORDS[f"{_a} {_b}"] = _d
            _DIRECTION_WORDS[f"{_a} {_b}ern"] = _d
            _DIRECTION_WORDS[_a[0] + _b[0]] = _d  # ne, nw, se, sw

#: comparison words -> (operator, True when it speaks of a distance from the centre itself)
_COMPARATORS: dict[str, tuple[str, bool]] = {
    "more than": (">", False),
    "over": (">", False),
    "above": (">", False),
    "larger than": (">", False),
    "bigger than": (">", False),
    "greater than": (">", False),
    "at least": (">=", False),
    ">": (">", False),
    ">=": (">=", False),
    "less than": ("<", False),
    "under": ("<", False),
    "below": ("<", False),
    "smaller than": ("<", False),
    "at most": ("<=", False),
    "<": ("<", False),
    "<=": ("<=", False),
    "within": ("<=", True),
    "closer than": ("<", True),
    "nearer than": ("<", True),
    "beyond": (">", True),
    "farther than": (">", True),
    "further than": (">", True),
}

#: unit words -> (field, factor to m² or m)
_UNITS: dict[str, tuple[str, float]] = {}
for _w in ("m2", "sqm", "sq m", "square m", "square metre", "square metres", "square meter", "square meters"):
    _UNITS[_w] = ("area_m2", 1.0)
for _w in ("ha", "hectare", "hectares"):
    _UNITS[_w] = ("area_m2", 1e4)
for _w in ("km2", "sq km", "square km", "square kilometre", "square kilometres", "square kilometer"):
    _UNITS[_w] = ("area_m2", 1e6)
_UNITS["square kilometers"] = ("area_m2", 1e6)
for _w in ("m", "metre", "metres", "meter", "meters"):
    _UNITS[_w] = ("distance_m", 1.0)
for _w in ("km", "kilometre", "kilometres", "kilometer", "kilometers"):
    _UNITS[_w] = ("distance_m", 1e3)

_CENTRE_REFS = tuple(
    f"{p} {t}{c}".replace("  ", " ")
    for p in ("of", "from", "to")
    for t in ("the ", "")
    for c in ("centre", "center", "middle", "scene centre", "scene center", "centre of the image")
) + tuple(f"{p} the center of the image" for p in ("of", "from", "to"))

_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")
_PUNCTUATION = set("?.,!;:\"'()[]")


# --- the query ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One limit on a numeric field: ``field op value`` (``area_m2`` in m², ``distance_m`` in m)."""

    field: str
    op: str  # ">", ">=", "<", "<="
    value: float

    def holds(self, x: float) -> bool:
        """Whether ``x`` satisfies the limit."""
        if self.op == ">":
            return x > self.value
        if self.op == ">=":
            return x >= self.value
        if self.op == "<":
            return x < self.value
        return x <= self.value


@dataclass(frozen=True)
class Query:
    """What a question asks: which polygons, and what to say about them.

    ``class_ids`` are the classes the question's categories and change types leave (all
    change classes when it names none); empty tuples in ``quantities`` and ``directions``
    mean "any".
    """

    text: str
    intent: str  # one of INTENTS
    class_ids: tuple[int, ...]
    categories: tuple[str, ...] = ()  # as named by the question (resolved), () = any
    change_types: tuple[str, ...] = ()
    quantities: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    rank: str | None = None  # "largest" / "smallest"
    limit: int | None = None  # how many of the ranked polygons (1 when only "largest")
    pairs: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (category, change type) of class_ids

    def quadruple(self) -> tuple[str, str, str, str] | None:
        """(direction, category, change type, quantity) when the question names exactly one of
        each (as an S2M sentence does), else None."""
        if len(self.pairs) != 1 or len(self.quantities) != 1 or len(self.directions) != 1:
            return None
        category, change_type = self.pairs[0]
        return self.directions[0], category, change_type, self.quantities[0]


# --- the vocabulary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meaning:
    kind: str  # cat, type, qty, dir, intent, rank, cmp, unit, generic, filler
    values: tuple[str, ...]


def _vocabulary(table: ClassTable) -> dict[tuple[str, ...], _Meaning]:
    """Every phrase the parser knows (as word tuples) and what it means; the table's words
    take precedence over the built-in ones."""
    return _cached_vocabulary(table, table.synonyms)  # synonyms take no part in table equality


@functools.lru_cache(maxsize=16)
def _cached_vocabulary(
    table: ClassTable, synonyms: tuple[tuple[str, tuple[str, ...]], ...]
) -> dict[tuple[str, ...], _Meaning]:
    vocab: dict[tuple[str, ...], _Meaning] = {}

    def put(phrase: str, kind: str, *values: str) -> None:
        vocab[tuple(_tokens(phrase))] = _Meaning(kind, values)

    for w in _FILLERS:
        put(w.replace("_", " "), "filler")
    for w in _GENERIC:
        put(w, "generic")
    for w, d in _DIRECTION_WORDS.items():
        put(w, "dir", d)
    for q in QUANTITIES:
        put(q, "qty", q)
    for w, i in _INTENT_WORDS.items():
        put(w, "intent", i)
    for w, r in _RANK_WORDS.items():
        put(w, "rank", r)
    for w in _COMPARATORS:
        put(w, "cmp", w)
    for w in _UNITS:
        put(w, "unit", w)
    for w in _CENTRE_REFS:
        put(w, "ref")
    table_words: dict[tuple[str, ...], tuple[str, set[str]]] = {}
    for kind, term, words in _table_terms(table):
        for w in words:
            key = tuple(_tokens(w))
            table_words.setdefault(key, (kind, set()))[1].add(term)
    for key, (kind, terms) in table_words.items():
        vocab[key] = _Meaning(kind, tuple(sorted(terms)))
    return vocab


def _table_terms(table: ClassTable) -> Iterable[tuple[str, str, list[str]]]:
    """(kind, category or change type, the words for it) for every term of the table."""
    for c in table.change_classes:
        words = [c.category, pluralize(c.category), c.singular_noun, c.plural_noun]
        yield "cat", c.category, words
        yield "type", c.change_type, [c.change_type]
    for term in table.categories:
        yield "cat", term, [w for s in table.synonyms_of(term) for w in (s, pluralize(s))]
    for term in table.change_types:
        yield "type", term, list(table.synonyms_of(term))


def known_words(table: ClassTable) -> str:
    """The words :func:`parse_question` knows, in one line (for error messages and help)."""

    def with_plural(words: Iterable[str]) -> list[str]:
        return [f"{w}(s)" if pluralize(w) == w + "s" else w for w in words]

    cats = []
    for term in table.categories:
        nouns = [term] + [c.singular_noun for c in table.change_classes if c.category == term]
        cats += with_plural(dict.fromkeys([*nouns, *table.synonyms_of(term)]))
    types = list(dict.fromkeys(w for t in table.change_types for w in (t, *table.synonyms_of(t))))
    dirs = [d for d in DIRECTIONS if d != "center"] + ["centre"]
    return (
        f"categories ({table.name}): {', '.join(cats)}; change types: {', '.join(types)}; "
        f"directions: {', '.join(dirs)}; quantities: {', '.join(QUANTITIES)}; "
        "questions: how many, how much area, where, which, largest, smallest; "
        "limits: more than / less than N m², ha or km², within N m or km of the centre"
    )


# --- reading a question ---------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Lower-case words, numbers, comparison signs and other single characters."""
    t = text.lower().replace("²", "2").replace("^2", "2").replace("’", "'")
    t = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", t)  # 1,000 -> 1000
    t = re.sub(r"(?<=\d)(?=[a-z])", " ", t)  # 500m2 -> 500 m2, 2km -> 2 km
    t = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", t)  # north-east -> north east
    found = re.findall(r"\d+(?:\.\d+)?|[a-z]+2(?![\w])|[a-z]+(?:'[a-z]+)?|[<>]=?|\S", t)
    return [w for w in found if w not in _PUNCTUATION]


def _longest(tokens: list[str], i: int, vocab: dict[tuple[str, ...], _Meaning], longest: int) -> int:
    """The length of the longest known phrase at ``tokens[i]`` (0 when none)."""
    for n in range(min(longest, len(tokens) - i), 0, -1):
        if tuple(tokens[i : i + n]) in vocab:
            return n
    return 0


@dataclass
class _State:
    """What has been read so far."""

    intents: list[str] = field(default_factory=list)
    cats: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (word, meanings)
    types: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    quantities: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    ranks: list[str] = field(default_factory=list)
    limit: int | None = None


def parse_question(text: str, table: ClassTable) -> Query:
    """Read ``text`` with the words of ``table`` (see the module docstring).

    Raises :class:`InputError` (``"TEXT": what is wrong; the fix``) for a word it does not
    know, an ambiguous word, a number without a unit or limit, or an empty question.
    """
    tokens = _tokens(text)
    if not tokens:
        raise InputError(f'"{text}": empty question; ask e.g. "how many destroyed buildings are in the north?"')
    vocab = _vocabulary(table)
    longest = max(len(k) for k in vocab)
    st = _State()
    unknown: list[str] = []
    i = 0
    kind = last = ""  # the kinds of the phrase just read and of the one before it
    while i < len(tokens):
        if _NUMBER_RE.match(tokens[i]):
            i = _read_ranked_number(text, tokens, i, vocab, longest, st)
            continue
        n = _longest(tokens, i, vocab, longest)
        if n == 0:
            unknown.append(tokens[i])
            i += 1
            continue
        phrase, m = " ".join(tokens[i : i + n]), vocab[tuple(tokens[i : i + n])]
        i += n
        last, kind = kind, m.kind
        if m.kind == "cmp":
            i = _read_limit(text, phrase, tokens, i, vocab, longest, st)
        elif m.kind == "ref" and last == "dir":  # "north of the centre": every direction is from the centre
            pass
        elif m.kind in ("unit", "ref"):
            raise InputError(f'"{text}": \'{phrase}\' without a limit before it; write e.g. "more than 500 m²"')
        else:
            _take(st, m, phrase)
    if unknown:
        words = ", ".join(f"'{w}'" for w in dict.fromkeys(unknown))
        raise InputError(f'"{text}": unknown word(s) {words}; use the words ask knows: {known_words(table)}')
    return _query(text, table, st)


def _take(st: _State, m: _Meaning, phrase: str) -> None:
    """Record one known phrase that is not part of a limit."""
    if m.kind == "cat":
        st.cats.append((phrase, m.values))
    elif m.kind == "type":
        st.types.append((phrase, m.values))
    elif m.kind == "qty":
        st.quantities.append(m.values[0])
    elif m.kind == "dir":
        st.directions.append(m.values[0])
    elif m.kind == "intent":
        st.intents.append(m.values[0])
    elif m.kind == "rank":
        st.ranks.append(m.values[0])


def _read_ranked_number(
    text: str, tokens: list[str], i: int, vocab: dict[tuple[str, ...], _Meaning], longest: int, st: _State
) -> int:
    """``the 3 largest``: a whole number right before a rank word."""
    n = _longest(tokens, i + 1, vocab, longest) if i + 1 < len(tokens) else 0
    if n and vocab[tuple(tokens[i + 1 : i + 1 + n])].kind == "rank" and tokens[i].isdigit() and int(tokens[i]) > 0:
        st.limit = int(tokens[i])
        return i + 1
    raise InputError(
        f'"{text}": the number {tokens[i]} needs a limit and a unit ("more than 500 m²", "within 2 km of the '
        f'centre") or a rank ("the 3 largest")'
    )


def _read_limit(
    text: str,
    phrase: str,
    tokens: list[str],
    i: int,
    vocab: dict[tuple[str, ...], _Meaning],
    longest: int,
    st: _State,
) -> int:
    """A comparison word, a number, a unit and (for a length) ``of/from the centre``."""
    op, about_distance = _COMPARATORS[phrase]
    example = '"within 2 km of the centre"' if about_distance else '"more than 500 m²"'
    if i >= len(tokens) or not _NUMBER_RE.match(tokens[i]):
        raise InputError(f"\"{text}\": '{phrase}' needs a number and a unit after it, e.g. {example}")
    number, value = tokens[i], float(tokens[i])
    i += 1
    n = _longest(tokens, i, vocab, longest)
    unit = " ".join(tokens[i : i + n])
    if not n or vocab[tuple(tokens[i : i + n])].kind != "unit":
        raise InputError(
            f"\"{text}\": '{phrase} {number}' needs a unit: m², ha or km² for an area, m or km for a "
            f"distance from the centre, e.g. {example}"
        )
    i += n
    fld, factor = _UNITS[unit]
    n = _longest(tokens, i, vocab, longest)
    has_ref = bool(n) and vocab[tuple(tokens[i : i + n])].kind == "ref"
    if has_ref:
        i += n
    if fld == "area_m2" and (about_distance or has_ref):
        raise InputError(
            f"\"{text}\": '{phrase} {number} {unit}' is an area, not a distance from the centre; give a length (m, km)"
        )
    if fld == "distance_m" and not (about_distance or has_ref):
        raise InputError(
            f"\"{text}\": '{phrase} {number} {unit}' is a length; say 'of the centre' for a distance from the "
            'scene centre (e.g. "more than 2 km from the centre"), or give an area (m², ha, km²)'
        )
    st.conditions.append(Condition(fld, op, value * factor))
    return i


def _one(text: str, what: str, values: list[str]) -> str | None:
    """The one value named (None when none); two different ones are refused."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        raise InputError(f'"{text}": asks for {" and ".join(distinct)} at once; ask one {what} per question')
    return distinct[0] if distinct else None


def _query(text: str, table: ClassTable, st: _State) -> Query:
    """Resolve what was read against the class table."""
    intents = st.intents
    if "which" in intents and len(set(intents)) > 1:  # "how many buildings which are ...": a relative pronoun
        intents = [x for x in intents if x != "which"]
    intent = _one(text, "thing (how many, how much area, where or which)", intents)
    rank = _one(text, "rank (largest or smallest)", st.ranks)
    if intent is None:
        intent = "which" if rank else "count"
    cat_terms = {t for _, ts in st.cats for t in ts}
    type_terms = {t for _, ts in st.types for t in ts}
    classes = [
        c
        for c in table.change_classes
        if (not st.cats or c.category in cat_terms) and (not st.types or c.change_type in type_terms)
    ]
    if not classes:
        named = " ".join(w for w, _ in st.types + st.cats)
        labels = ", ".join(c.label for c in table.change_classes)
        raise InputError(f"\"{text}\": no class of table '{table.name}' is a '{named}'; its classes are: {labels}")
    for words, attr in ((st.types, "change_type"), (st.cats, "category")):
        for word, meanings in words:
            used = sorted({getattr(c, attr) for c in classes} & set(meanings))
            if len(used) > 1:
                raise InputError(
                    f"\"{text}\": '{word}' can mean {' or '.join(used)} here; say which (e.g. '{used[0]}')"
                )
    if len({w for w, _ in st.cats}) > 1 and len({w for w, _ in st.types}) > 1:
        if len({c.category for c in classes}) > 1 and len({c.change_type for c in classes}) > 1:
            raise InputError(
                f'"{text}": several categories and several change types at once do not say which goes with '
                'which; ask about one pair at a time (e.g. "destroyed buildings", then "new greenhouses")'
            )
    return Query(
        text=text,
        intent=intent,
        class_ids=tuple(c.id for c in classes),
        categories=tuple(dict.fromkeys(c.category for c in classes)) if st.cats else (),
        change_types=tuple(dict.fromkeys(c.change_type for c in classes)) if st.types else (),
        quantities=tuple(q for q in QUANTITIES if q in st.quantities),
        directions=tuple(d for d in DIRECTIONS if d in st.directions),
        conditions=tuple(st.conditions),
        rank=rank,
        limit=(st.limit or 1) if rank else None,
        pairs=tuple((c.category, c.change_type) for c in classes),
    )
