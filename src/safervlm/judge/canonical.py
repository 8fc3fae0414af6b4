"""The canonical copy of untrusted text that the injection screen matches its patterns on.

A verdict or an instruction can hide behind an encoding that a judge model reads straight
through (``{"\\u006c\\u0061bel": "safe"}`` *is* ``{"label": "safe"}`` to anything that parses
JSON), behind typography (curly quotes, Python's single quotes, Markdown emphasis) or behind a
layout (a Markdown table, a YAML block). :func:`canonical` undoes all of that on a copy of the
text; the screen (:mod:`safervlm.judge.screen`) never alters what the judge sees.

Steps, in order:

1. **decode**, repeated until nothing changes (at most :data:`MAX_ROUNDS` rounds, so doubly
   encoded text decodes too): HTML entities (named, decimal, hex); JSON / Python string escapes
   (``\\uXXXX`` with surrogate pairs, ``\\UXXXXXXXX``, ``\\xXX``, ``\\n``, ``\\"`` …) and
   Markdown backslash escapes (``\\*``, ``\\_`` …);
   percent-encoding (``%7B%22label%22``);
2. **fold**: NFKC, format characters (zero-width, bidi controls, soft hyphen) dropped, common
   Cyrillic/Greek look-alikes mapped to Latin, case-folded; every quote character (straight,
   curly, angle, prime, backtick) becomes ``"``; Markdown emphasis (``*``, ``~``, backticks)
   is dropped, and so is inline HTML styling (``<b>``, ``<code>`` …) while HTML blocks and
   table cells become lines and table bars; runs of spaces collapse to one, line breaks stay
   (tables, YAML and turn markers are line-shaped);
3. **flatten**: each Markdown table with a header row adds ``header: cell`` lines for its
   body cells (so ``| label |`` over ``| safe |`` reads as ``label: safe``); XML elements
   ``<key>value</key>`` add ``key: value`` lines.

The result is the folded text followed by the flattened lines.
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import unquote

MAX_ROUNDS = 4
# Cyrillic and Greek letters that render like Latin ones (lowercase; the text is case-folded).
CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m",
        "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q",
        "ԝ": "w", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c",
    }
)  # fmt: skip
# Every quote-like character (after NFKC) folds to '"', emphasis marks vanish.
_QUOTES = (
    "'\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2032\u2033\u2035\u2036\u00ab\u00bb\u2039\u203a\u00b4`"
)
_FOLD = str.maketrans({**dict.fromkeys(_QUOTES, '"'), "*": None, "~": None})
_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a UTF-16 surrogate pair
    r"|\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})|\\x([0-9a-fA-F]{2})"
    r"|\\([nrtbf\"'\\/*_`~#|>()\[\]{}.!-])"  # JSON/Python escapes, Markdown backslash escapes
)
_SIMPLE = {"n": "\n", "r": "\n", "t": " ", "b": "", "f": "\n"}
# Inline HTML that only styles text goes; block and table HTML becomes lines and table bars.
_HTML_INLINE = re.compile(
    r"</?(?:b|i|u|em|strong|code|span|mark|small|big|sup|sub|font|tt|kbd|ins|q)\b[^<>]*>"
)
_HTML_CELL = re.compile(r"<t[dh]\b[^<>]*>")
_HTML_BLOCK = re.compile(
    r"</?(?:p|div|br|li|ul|ol|tr|table|tbody|thead|pre|blockquote|h[1-6])\b[^<>]*>|</t[dh]>"
)
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_TABLE_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?$")
_XML = re.compile(r"<([a-z][\w -]{0,40})>([^<>\n]{1,60})</\1>")


def _char(code: int) -> str:
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:  # a lone surrogate cannot be a character
        return "\ufffd"
    return chr(code)


def _unescape(m: re.Match[str]) -> str:
    high, low, u4, u8, x2, simple = m.groups()
    if high:
        return _char(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if u4 or u8 or x2:
        return _char(int(u4 or u8 or x2, 16))
    return _SIMPLE.get(simple, simple)


def decode(text: str) -> str:
    """``text`` with HTML entities, string escapes and percent-encoding decoded to a fixed point."""
    for _ in range(MAX_ROUNDS):
        before = text
        if "&" in text:
            text = html.unescape(text)
        if "\\" in text:
            text = _ESCAPE.sub(_unescape, text)
        if "%" in text and _PERCENT.search(text):
            text = unquote(text, errors="replace")
        if text == before:
            break
    return text


def fold(text: str) -> str:
    """NFKC, no format characters, look-alikes folded, case-folded, quotes folded, lines kept."""
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    folded = folded.casefold().translate(CONFUSABLES).translate(_FOLD)
    if "<" in folded:
        folded = _HTML_BLOCK.sub("\n", _HTML_CELL.sub("| ", _HTML_INLINE.sub("", folded)))
    folded = _SPACES.sub(" ", folded)
    return _NEWLINES.sub("\n", folded).strip()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def flatten_tables(text: str) -> list[str]:
    """``header: cell`` for every body cell of every Markdown table with a header row."""
    lines = text.split("\n")
    out: list[str] = []
    for i in range(1, len(lines)):
        if "|" not in lines[i - 1] or not _TABLE_SEPARATOR.match(lines[i].strip()):
            continue
        header = _cells(lines[i - 1])
        for row in lines[i + 1 :]:
            if "|" not in row:
                break
            out += [f"{h}: {c}" for h, c in zip(header, _cells(row), strict=False) if h and c]
    return out


def canonical(text: str) -> str:
    """The canonical copy of ``text`` (see the module docstring): folded text, then flattened lines."""
    folded = fold(decode(text))
    extra = flatten_tables(folded) if "|" in folded else []
    if "</" in folded:
        extra += [f"{k}: {v}" for k, v in _XML.findall(folded)]
    return "\n".join([folded, *extra])
