"""Names and texts made safe to follow a speaker label (``nickname(qq): text``).

In a shared group conversation only the bot writes labels, at the start of a user message.
Nothing a member controls (their group card, their text) may produce a line that reads as one:
names lose their parentheses and colons, and a text's continuation lines are indented with any
``(digits):`` in them bracketed differently. Pure functions, free of NoneBot.
"""

from __future__ import annotations

import re

NAME_LIMIT = 24
# Put before each continuation line of a group text, so only the label starts at column 0.
INDENT = "  "

# Parentheses and colons of any width or script that could pass for the label's own.
_OPEN = "(\uff08\ufe59\ufe35\u207d\u208d\u2768\u276a\u2e28"
_CLOSE = ")\uff09\ufe5a\ufe36\u207e\u208e\u2769\u276b\u2e29"
_COLON = ":\uff1a\ufe55\ufe13\ufe30\ua789\u2236\u02f8\u02d0\u05c3\u205a\u1804\ua4fd"
_SQUARE = str.maketrans(dict.fromkeys(_OPEN, "[") | dict.fromkeys(_CLOSE, "]"))

_EMOJI = "\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff"
# What shows nothing or reorders what is shown: controls that are not whitespace, format
# characters (zero-width, bidi embeddings/overrides/isolates, BOM, tag characters) and Hangul
# fillers. A zero-width joiner between two emoji stays: it draws them as one picture.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\u00ad\u034f\u061c\u115f\u1160\u180e"
    "\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f]"
    f"|(?<![{_EMOJI}])\u200d|\u200d(?![{_EMOJI}])"
)
# In a name, colons go with whitespace (line breaks of every kind included): one plain space.
_NAME_GAPS = re.compile(rf"[\s{_COLON}]+")
# ``(99999):`` in a text, in any width: what a forged label needs.
_FORGED_ID = re.compile(rf"[{_OPEN}](\s*\d+\s*)[{_CLOSE}](?=\s*[{_COLON}])")


def strip_invisible(text: str) -> str:
    """``text`` without control, zero-width, bidi-override and other invisible characters."""
    return _INVISIBLE.sub("", text)


def clean_name(raw: str, fallback: str) -> str:
    """A speaker name safe inside a label: visible characters only, parentheses made square,
    colons and whitespace runs made one space, at most ``NAME_LIMIT`` characters; ``fallback``
    (the QQ id) when nothing is left. Idempotent, so names cleaned when captured may be again.
    """
    name = _NAME_GAPS.sub(" ", strip_invisible(raw).translate(_SQUARE)).strip()
    return name[:NAME_LIMIT].rstrip() or fallback


def clean_text(text: str) -> str:
    """A group member's text laid out under its label: line breaks of every kind become
    ``\\n``, invisible characters go, and each continuation line is indented with any
    ``(digits):`` in it turned into ``[digits]:``. A single line only loses invisible characters.
    """
    first, *rest = [strip_invisible(line) for line in text.splitlines()] or [""]
    return "\n".join([first, *map(_continuation, rest)])


def _continuation(line: str) -> str:
    return INDENT + _FORGED_ID.sub(r"[\1]", line) if line.strip() else ""
