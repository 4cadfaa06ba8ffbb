"""Model text for QQ: Markdown turned into plain text, long answers split at paragraphs.

The output is always used as text segments, so nothing here needs to escape CQ codes.
"""

from __future__ import annotations

import re

from ..glm.completion import Completion

# QQ accepts about 4500 characters per message; stay well under it.
QQ_MESSAGE_LIMIT = 4000
MAX_SOURCES = 3

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(\[[ xX]\]\s+)?")
_QUOTE = re.compile(r"^\s{0,3}>\s?")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)[^)]*\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_CODE = re.compile(r"`([^`\n]+)`")


def _inline(text: str) -> str:
    text = _IMAGE.sub(lambda m: f"[图片{(': ' + m[1]) if m[1] else ''}] {m[2]}", text)
    text = _LINK.sub(lambda m: m[1] if m[1] == m[2] else f"{m[1]} ({m[2]})", text)
    text = _CODE.sub(r"\1", text)
    text = _BOLD.sub(r"\2", text)
    text = _ITALIC.sub(r"\1", text)
    return _STRIKE.sub(r"\1", text)


def _is_table_rule(line: str) -> bool:
    """``|---|:--:|``: the line under a table's header."""
    return "|" in line and "--" in line and not line.translate(_TABLE_RULE_CHARS).strip()


_TABLE_RULE_CHARS = str.maketrans("", "", "|:-")


def _table_row(line: str) -> str:
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return " | ".join(_inline(cell) for cell in cells)


def markdown_to_text(markdown: str) -> str:
    """Plain text that reads well in QQ: no ``**``, ``#``, fences or table rules left bare."""
    out: list[str] = []
    in_code = False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            out.append(line)
            continue
        if _is_table_rule(line):
            continue
        if heading := _HEADING.match(line):
            out.append(f"【{_inline(heading[1])}】")
        elif _RULE.match(line):
            out.append("————")
        elif line.lstrip().startswith("|") and line.rstrip().endswith("|"):
            out.append(_table_row(line))
        else:
            line = _QUOTE.sub("│ ", line)
            line = _BULLET.sub(lambda m: f"{m[1]}• ", line)
            out.append(_inline(line))
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def split_text(text: str, limit: int = QQ_MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at paragraph, then line, then hard bounds."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0)
        if cut < limit // 3:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def answer_text(completion: Completion) -> str:
    """The answer as QQ shows it, with up to three web search sources under it."""
    text = markdown_to_text(completion.content)
    found = [item for item in completion.web_search if item.get("link") or item.get("title")]
    sources = [
        f"{index}. {item.get('title') or item.get('media') or '来源'} {item.get('link', '')}"
        for index, item in enumerate(found[:MAX_SOURCES], start=1)
    ]
    return text + ("\n\n参考来源：\n" + "\n".join(sources) if sources else "")
