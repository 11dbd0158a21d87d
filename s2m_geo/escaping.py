"""Text that a user or a model file names, written into a file: one home per kind of sink.

Scene ids (manifests, folder pairs), class tables (YAML, a model's header), zone names, file
paths and error messages end up in QGIS styles, reports and file names. Every writer goes
through one of these, never through its own quoting:

- :func:`line_fault` — what a one-line name may not hold (control characters, line and
  paragraph separators, lone surrogates, noncharacters); class tables and scene ids are
  refused with it, so such names never reach a writer;
- :func:`xml_attr` — a quoted XML attribute value (QGIS styles: ``.qml`` files and the
  GeoPackage's ``layer_styles``);
- :func:`html_text` — text in an HTML element or a quoted attribute (``report.html``);
- :func:`md_text` — text in a Markdown table cell, heading or paragraph (``report.md``);
- :func:`name_bytes` and :data:`NAME_MAX_BYTES` — file names are limited in bytes, not in
  characters (``batch.layout.max_scene_id_bytes``).
"""

from __future__ import annotations

import html
import unicodedata
from xml.sax.saxutils import quoteattr

#: The longest file name (one path component) common file systems allow, in bytes
#: (ext4, XFS, APFS, NTFS: 255; non-ASCII characters take 2-4 bytes in UTF-8).
NAME_MAX_BYTES = 255

#: Markdown characters that could start markup in running text or end a table cell.
_MD_SPECIAL = "\\|*_`[]<>#~&"


def line_fault(text: str) -> str | None:
    """The first character that has no place in a one-line name, or ``None``.

    Control characters (newlines, tabs, NUL, ...), Unicode line and paragraph separators,
    lone surrogates (which no UTF-8 file can hold) and noncharacters (U+FFFE, U+FFFF, ...,
    which XML forbids).
    """
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or (ord(ch) & 0xFFFE) == 0xFFFE:
            return ch
        if 0xFDD0 <= ord(ch) <= 0xFDEF:
            return ch
    return None


def xml_attr(text: str) -> str:
    """``text`` as a quoted XML attribute value (quotes included) that reads back exactly."""
    return quoteattr(text, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def html_text(text: object) -> str:
    """``str(text)`` escaped for an HTML element's text or a quoted attribute value."""
    return html.escape(str(text), quote=True)


def md_text(text: object) -> str:
    """``str(text)`` on one line with Markdown's special characters escaped: it cannot end a
    table cell (``|``), break a row (newlines) or start markup (links, HTML, emphasis)."""
    s = " ".join(str(text).split())
    for ch in _MD_SPECIAL:
        s = s.replace(ch, "\\" + ch)
    return s


def name_bytes(name: str) -> int:
    """The length of a file name as file systems count it: bytes of UTF-8."""
    return len(name.encode("utf-8", "surrogatepass"))


__all__ = ["NAME_MAX_BYTES", "html_text", "line_fault", "md_text", "name_bytes", "xml_attr"]
