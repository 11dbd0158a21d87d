"""Class tables: which change classes a model predicts and how S2M names them.

A class table is a YAML file (``configs/classes/*.yaml``)::

    name: gaza_change
    reference_gsd_m: 0.5
    classes:
      - {id: 0, name: no_change, category: none, change_type: none, color: "#000000"}
      - {id: 1, name: building_destroyed, category: building, change_type: destroyed,
         color: "#e31a1c"}

Ids must run 0..K without gaps (id 0 = no change), because the model predicts K+1 logits
and the change raster stores the id of the winning logit.

An optional ``synonyms`` mapping gives other words for a category or a change type, used
when questions are read (``s2m-geo ask``), never in sentences::

    synonyms:
      building: [house, home]          # plurals (houses, homes) follow from the singular
      destroyed: [demolished, razed]
      newly built: [new, constructed]

A word may stand for several change types (``new``: newly built, newly established), which
the question's category then tells apart; it may not stand for both a category and a change
type, nor repeat a category, change type or noun of the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError
from .escaping import line_fault

_TABLE_KEYS = {"name", "description", "reference_gsd_m", "classes", "synonyms"}
_CLASS_KEYS = {"id", "name", "category", "change_type", "color", "noun", "plural"}
_REQUIRED_CLASS_KEYS = {"id", "name", "category", "change_type", "color"}
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

DEFAULT_TABLE = "gaza_change"

#: The value of "no prediction" (outside the valid area) in class rasters; ids stop at 254.
NODATA_CLASS = 255


@dataclass(frozen=True)
class ChangeClass:
    """One row of a class table."""

    id: int
    name: str
    category: str  # what changed
    change_type: str  # how it changed
    color: str  # "#rrggbb"
    noun: str = ""  # singular noun used in sentences (default: category)
    plural: str = ""  # plural noun used in sentences (default: noun + "s")

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an (r, g, b) tuple of 0-255 ints."""
        h = self.color.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)

    @property
    def label(self) -> str:
        """What a legend shows: 'destroyed building', 'newly built greenhouse', ..."""
        return f"{self.change_type} {self.category}".strip() or self.name

    @property
    def singular_noun(self) -> str:
        return self.noun or self.category

    @property
    def plural_noun(self) -> str:
        return self.plural or pluralize(self.singular_noun)


def pluralize(noun: str) -> str:
    """The regular English plural of a noun (the last word of a phrase): box -> boxes, city -> cities."""
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


@dataclass(frozen=True)
class ClassTable:
    """An ordered table of change classes, id 0 being "no change"."""

    name: str
    classes: tuple[ChangeClass, ...]
    reference_gsd_m: float = 0.5
    description: str = ""
    source: str = field(default="", compare=False)
    #: (category or change type, its synonyms) pairs in table order; words for questions only,
    #: so they take no part in comparing tables (a model's table may predate them)
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = field(default=(), compare=False)

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[ChangeClass]:
        return iter(self.classes)

    def __getitem__(self, class_id: int) -> ChangeClass:
        return self.classes[class_id]

    @property
    def num_classes(self) -> int:
        """Number of logits a model predicts: K change classes + no change."""
        return len(self.classes)

    @property
    def change_classes(self) -> tuple[ChangeClass, ...]:
        return self.classes[1:]

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories of the change classes, each once, in table order."""
        return tuple(dict.fromkeys(c.category for c in self.change_classes))

    @property
    def change_types(self) -> tuple[str, ...]:
        """The change types of the change classes, each once, in table order."""
        return tuple(dict.fromkeys(c.change_type for c in self.change_classes))

    def synonyms_of(self, term: str) -> tuple[str, ...]:
        """The declared synonyms of a category or change type (``()`` when none)."""
        for key, words in self.synonyms:
            if key == term:
                return words
        return ()

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """A rasterio colour map (id -> RGBA); id 0 transparent-black by convention."""
        return {c.id: (*c.rgb, 255) for c in self.classes}

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that :func:`class_table_from_dict` reads back (used in model packages)."""
        rows = []
        for c in self.classes:
            row = {"id": c.id, "name": c.name, "category": c.category, "change_type": c.change_type, "color": c.color}
            if c.noun:
                row["noun"] = c.noun
            if c.plural:
                row["plural"] = c.plural
            rows.append(row)
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "reference_gsd_m": self.reference_gsd_m,
            "classes": rows,
        }
        if self.synonyms:
            out["synonyms"] = {key: list(words) for key, words in self.synonyms}
        return out


def class_table_from_dict(data: Any, source: str = "<dict>") -> ClassTable:
    """Validate a parsed class table; raise :class:`InputError` naming ``source`` and the fix."""

    def bad(msg: str) -> InputError:
        return InputError(f"{source}: invalid class table: {msg}")

    if not isinstance(data, Mapping):
        raise bad("expected a mapping with keys 'name' and 'classes'")
    unknown = set(data) - _TABLE_KEYS
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_TABLE_KEYS)}")
    rows = data.get("classes")
    if not isinstance(rows, list) or not rows:
        raise bad("'classes' must be a non-empty list")
    gsd = data.get("reference_gsd_m", 0.5)
    if not isinstance(gsd, (int, float)) or isinstance(gsd, bool) or not gsd > 0:
        raise bad(f"'reference_gsd_m' must be a positive number of metres, got {gsd!r}")

    classes: list[ChangeClass] = []
    seen: set[int] = set()
    for i, row in enumerate(rows):
        c = _class_from_row(row, f"classes[{i}]", bad)
        if c.id in seen:
            raise bad(f"duplicate id {c.id}; each class needs its own id")
        seen.add(c.id)
        classes.append(c)
    if 0 not in seen:
        raise bad("no class with id 0; add the 'no change' class as id 0")
    classes.sort(key=lambda c: c.id)
    expected = list(range(len(classes)))
    if [c.id for c in classes] != expected:
        raise bad(f"ids must run 0..{len(classes) - 1} without gaps, got {[c.id for c in classes]}")
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise bad("class names must be unique")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise bad("'name' must be a non-empty string")
    _one_line(name, "name", bad)
    return ClassTable(
        name=name,
        classes=tuple(classes),
        reference_gsd_m=float(gsd),
        description=str(data.get("description", "")),
        source=source,
        synonyms=_synonyms(data.get("synonyms") or {}, classes, bad),
    )


def _norm(text: str) -> str:
    """Lower case, single spaces: the form words are compared in."""
    return " ".join(text.lower().split())


def _synonyms(
    data: Any, classes: list[ChangeClass], bad: Callable[[str], InputError]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The checked ``synonyms`` mapping (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise bad("'synonyms' must map a category or change type to a list of words")
    change = [c for c in classes if c.id != 0]
    categories = {c.category for c in change}
    types = {c.change_type for c in change}
    taken = {_norm(w) for c in change for w in (c.category, c.change_type, c.singular_noun, c.plural_noun)}
    kind_of: dict[str, str] = {}  # synonym -> "category" / "change type"
    out: list[tuple[str, tuple[str, ...]]] = []
    for key, words in data.items():
        if key not in categories and key not in types:
            raise bad(
                f"synonyms of {key!r}: not a category or change type of the table; "
                f"use one of {sorted(categories | types)}"
            )
        kind = "category" if key in categories else "change type"
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise bad(f"synonyms of {key!r} must be a list of non-empty strings")
        for w in words:
            _one_line(w, f"synonym of {key!r}", bad)
        for w in words:
            n = _norm(w)
            if n in taken:
                raise bad(f"synonym {w!r} of {key!r} is already a category, change type or noun of the table")
            if kind_of.setdefault(n, kind) != kind:
                raise bad(f"synonym {w!r} stands for both a category and a change type; keep it for one")
        out.append((key, tuple(_norm(w) for w in words)))
    return tuple(out)


def _one_line(text: str, field_name: str, bad: Callable[[str], InputError]) -> None:
    """Names, categories, change types and words are one line of text: they become legend
    labels, field names, report cells and parts of one-line messages."""
    ch = line_fault(text)
    if ch is not None:
        raise bad(
            f"{field_name} {text!r} holds the control character {ch!r}; names, categories and "
            f"change types are one line of text, remove it"
        )


def _class_from_row(row: Any, where: str, bad: Callable[[str], InputError]) -> ChangeClass:
    """One checked row of a class table."""
    if not isinstance(row, Mapping):
        raise bad(f"{where} must be a mapping")
    unknown = set(row) - _CLASS_KEYS
    if unknown:
        raise bad(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_CLASS_KEYS)}")
    missing = _REQUIRED_CLASS_KEYS - set(row)
    if missing:
        raise bad(f"{where} lacks key(s) {sorted(missing)}")
    cid = row["id"]
    if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid <= 254:
        raise bad(f"{where}: id must be an integer 0-254, got {cid!r}")
    for key in ("name", "category", "change_type"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise bad(f"{where}: '{key}' must be a non-empty string")
        _one_line(row[key], f"{where}.{key}", bad)
    color = row["color"]
    if not isinstance(color, str) or not _COLOR_RE.match(color):
        raise bad(f"{where}: color must look like '#rrggbb', got {color!r}")
    for key in ("noun", "plural"):
        if key in row and (not isinstance(row[key], str) or not row[key].strip()):
            raise bad(f"{where}: '{key}' must be a non-empty string")
        if key in row:
            _one_line(row[key], f"{where}.{key}", bad)
    return ChangeClass(
        id=cid,
        name=row["name"],
        category=row["category"],
        change_type=row["change_type"],
        color=color.lower(),
        noun=row.get("noun", ""),
        plural=row.get("plural", ""),
    )


def load_class_table(path_or_name: str | Path = DEFAULT_TABLE) -> ClassTable:
    """Load a class table from a YAML file, or a packaged one by name (e.g. ``gaza_change``)."""
    p = Path(path_or_name)
    if p.suffix.lower() not in (".yaml", ".yml") and not p.exists():
        packaged = resources.files("s2m_geo.configs") / "classes" / f"{path_or_name}.yaml"
        if not packaged.is_file():
            raise InputError(
                f"{path_or_name}: no such class table file or packaged table "
                f"(packaged: {', '.join(packaged_class_tables())})"
            )
        text, source = packaged.read_text(encoding="utf-8"), f"{path_or_name} (packaged)"
    else:
        if not p.is_file():
            raise InputError(f"{p}: class table file not found; check the path")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from exc
    return class_table_from_dict(data, source)


def packaged_class_tables() -> list[str]:
    """Names of the class tables shipped with the package."""
    folder = resources.files("s2m_geo.configs") / "classes"
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))
