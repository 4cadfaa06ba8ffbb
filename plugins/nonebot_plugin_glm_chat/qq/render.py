"""Model text for QQ: Markdown turned into plain text, long answers split at paragraphs.

The output is always used as text segments, so nothing here needs to escape CQ codes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from ..glm.completion import Completion

# QQ accepts about 4500 characters per message; stay well under it.
QQ_MESSAGE_LIMIT = 4000
MAX_SOURCES = 3


class _Parser(MarkdownIt):
    """CommonMark with tables and ``~~strike~~``, keeping what Markdown would hide or rewrite.

    Raw HTML and link reference definitions stay text (QQ shows them as typed), and link
    addresses stay as written instead of being percent-encoded for a browser.
    """

    def __init__(self) -> None:
        super().__init__("commonmark", {"html": False})
        self.enable(["table", "strikethrough"]).disable("reference")
        self.core.ruler.push("unpaired_bold", _drop_unpaired_bold)

    def normalizeLink(self, url: str) -> str:
        return url

    def normalizeLinkText(self, link: str) -> str:
        return link


_BOLD_MARK = re.compile(r"\*\*")


def _drop_unpaired_bold(state: StateCore) -> None:
    """Remove ``**`` pairs that CommonMark left as text.

    Its flanking rules do not let ``**`` close between CJK punctuation and a letter, as in
    ``**注意：**这里``, which models write all the time and always mean as bold.
    """
    for inline in state.tokens:
        if inline.type != "inline" or not inline.children:
            continue
        doomed: list[tuple[Token, int]] = []
        opener: tuple[Token, int] | None = None
        for token in inline.children:
            if token.type != "text":
                continue
            for mark in _BOLD_MARK.finditer(token.content):
                at, text = mark.start(), token.content
                if opener is not None and not text[at - 1 : at].isspace():
                    doomed += [opener, (token, at)]
                    opener = None
                elif not text[at + 2 : at + 3].isspace():
                    opener = (token, at)
        for token, at in reversed(doomed):  # later marks first, so positions stay valid
            token.content = token.content[:at] + token.content[at + 2 :]


_MARKDOWN = _Parser()
_DUNDER_NAME = re.compile(r"[A-Za-z0-9_]+")
_TASK_BOX = re.compile(r"\[([ xX])\](?: +|$)")
_BULLET = "• "


class _Line(NamedTuple):
    text: str
    code: bool = False  # code is kept as written: never indented, prefixed or trimmed


_BLANK = _Line("")


def _inline_text(node: SyntaxTreeNode) -> str:
    """The text of a block holding inline content (paragraph, heading, table cell)."""
    return "".join(_span(span) for inline in node.children for span in inline.children)


def _spans(nodes: Sequence[SyntaxTreeNode]) -> str:
    return "".join(_span(node) for node in nodes)


def _span(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind in ("em", "strong", "s"):
        inner = _spans(node.children)
        return f"{node.markup}{inner}{node.markup}" if _keeps_markers(node, inner) else inner
    if kind == "link":
        return _link(_spans(node.children), str(node.attrs["href"]))
    if kind == "image":
        alt = _spans(node.children)
        return f"[图片{': ' + alt if alt else ''}] {node.attrs['src']}"
    return node.content  # text, code_inline and anything else as written


def _keeps_markers(node: SyntaxTreeNode, inner: str) -> bool:
    """Emphasis that CommonMark finds in code-like words: ``2*3*4`` and ``__init__`` stay."""
    if node.markup == "__":
        return _DUNDER_NAME.fullmatch(inner) is not None
    if node.markup.startswith("*"):
        return _is_ascii_alnum(_edge(node.previous_sibling, -1)) and _is_ascii_alnum(
            _edge(node.next_sibling, 0)
        )
    return False


def _edge(node: SyntaxTreeNode | None, index: int) -> str:
    return node.content[index] if node is not None and node.type == "text" and node.content else ""


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _link(text: str, url: str) -> str:
    if not text or text == url.removeprefix("mailto:"):
        return text or url
    return f"{text} ({url})"


def _prose(text: str) -> list[_Line]:
    return [_Line(line.rstrip()) for line in text.split("\n")]


def _code(content: str) -> list[_Line]:
    return [_Line(line, code=True) for line in content.rstrip("\n").split("\n")] if content else []


def _join(blocks: Iterable[list[_Line]], tight: bool = False) -> list[_Line]:
    """Blocks one after another with a blank line between (in a tight list, only around code)."""
    lines: list[_Line] = []
    for block in blocks:
        if not block:
            continue
        if lines and not (tight and not lines[-1].code and not block[0].code):
            lines.append(_BLANK)
        lines.extend(block)
    return lines


def _prefixed(lines: list[_Line], first: str, rest: str) -> list[_Line]:
    """``first`` before the first line, ``rest`` before every other prose line; code stays put."""
    if not lines or lines[0].code:  # the marker gets a line of its own
        return _join([[_Line(first.rstrip())], _prefixed_each(lines, rest)], tight=True)
    return _prefixed_each(lines[:1], first) + _prefixed_each(lines[1:], rest)


def _prefixed_each(lines: list[_Line], prefix: str) -> list[_Line]:
    return [line if line.code else _Line((prefix + line.text).rstrip()) for line in lines]


def _blocks(nodes: Iterable[SyntaxTreeNode], tight: bool = False) -> list[_Line]:
    return _join((_block(node) for node in nodes), tight)


def _block(node: SyntaxTreeNode) -> list[_Line]:
    kind = node.type
    if kind == "paragraph":
        return _prose(_inline_text(node))
    if kind == "heading":
        title = _inline_text(node)
        return _prose(f"【{title}】") if title else []
    if kind in ("fence", "code_block"):
        return _code(node.content)
    if kind == "hr":
        return [_Line("————")]
    if kind == "blockquote":
        return _prefixed(_blocks(node.children), "│ ", "│ ")
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "table":
        return _table(node)
    return _prose(node.content)


def _list(node: SyntaxTreeNode) -> list[_Line]:
    tight = any(child.hidden for item in node.children for child in item.children)
    start = int(node.attrs.get("start", 1))
    ordered = node.type == "ordered_list"
    return _join(
        (
            _item(item, f"{start + index}{item.markup} " if ordered else _BULLET, tight)
            for index, item in enumerate(node.children)
        ),
        tight,
    )


def _item(item: SyntaxTreeNode, marker: str, tight: bool) -> list[_Line]:
    """A list item under its marker; a task item's ``[ ]`` / ``[x]`` becomes ☐ / ☑."""
    lines = _blocks(item.children, tight)
    indent = " " * len(marker)
    box = _TASK_BOX.match(lines[0].text) if lines and not lines[0].code else None
    if box:
        checkbox = "☐ " if box[1] == " " else "☑ "
        marker = checkbox if marker == _BULLET else marker + checkbox
        lines = [_Line(lines[0].text[box.end() :]), *lines[1:]]
    return _prefixed(lines, marker, indent)


def _table(node: SyntaxTreeNode) -> list[_Line]:
    rows = (row for section in node.children for row in section.children)
    return [_Line(" | ".join(_inline_text(cell) for cell in row.children)) for row in rows]


def markdown_to_text(markdown: str) -> str:
    """Plain text that reads well in QQ: no ``**``, ``#``, fences or table rules left bare."""
    plain = _plain_paragraphs(markdown)
    return plain if plain is not None else _rendered(markdown)


def _rendered(markdown: str) -> str:
    lines = _blocks(SyntaxTreeNode(_MARKDOWN.parse(markdown)).children)
    return "\n".join(line.text for line in lines).strip("\n")


# What may start Markdown syntax (or what the parser rewrites) anywhere in a line, and at the
# start of a line: a text with neither is paragraphs of plain text already.
_INLINE_SYNTAX = re.compile(r"[\\`*_~\[\]<&|\t\r\0]")
_BLOCK_SYNTAX = re.compile(r"[#>+=\-\s]|\d{1,9}[.)]")


def _plain_paragraphs(text: str) -> str | None:
    """``text`` as Markdown would render it when it holds no Markdown at all (a short answer
    usually does not): its lines without trailing spaces, one blank line between paragraphs.
    None when it might hold some; parsing costs about as much CPU as sending the answer."""
    if _INLINE_SYNTAX.search(text):
        return None
    lines: list[str] = []
    for line in text.split("\n"):
        if not line.strip(" "):
            if lines and lines[-1]:
                lines.append("")
        elif _BLOCK_SYNTAX.match(line):
            return None
        else:
            lines.append(line.rstrip())
    return "\n".join(lines).strip("\n")


# Where a piece may end, best first: a paragraph break, a line break, a sentence end or a space.
_BREAKS = (
    re.compile(r"\n(?:[ \t]*\n)+"),
    re.compile(r"\n"),
    re.compile(r"(?<=[。！？；…])[ \t]*|[ \t]+"),
)
_LEADING_BLANK_LINES = re.compile(r"^(?:[ \t]*\n)+")


def _cut(text: str, limit: int) -> tuple[int, int]:
    """Where the first piece of ``text`` ends and the rest begins (a hard cut if no break)."""
    for pattern in _BREAKS:
        last = None
        for found in pattern.finditer(text, 1):
            if found.start() > limit:
                break
            last = found
        if last is not None:
            return last.start(), last.end()
    return limit, limit


def split_text(text: str, limit: int = QQ_MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, each ending at the last paragraph break before
    the limit, else the last line break, else the last sentence end or space."""
    pieces: list[str] = []
    rest = _LEADING_BLANK_LINES.sub("", text.rstrip())
    while len(rest) > limit:
        end, start = _cut(rest, limit)
        pieces.append(rest[:end].rstrip())
        rest = _LEADING_BLANK_LINES.sub("", rest[start:])
    pieces.append(rest)
    return [piece for piece in pieces if piece]


def answer_text(completion: Completion) -> str:
    """The answer as QQ shows it, with up to three web search sources under it."""
    text = markdown_to_text(completion.content)
    found = [item for item in completion.web_search if item.get("link") or item.get("title")]
    sources = [
        f"{index}. {item.get('title') or item.get('media') or '来源'} {item.get('link', '')}"
        for index, item in enumerate(found[:MAX_SOURCES], start=1)
    ]
    return text + ("\n\n参考来源：\n" + "\n".join(sources) if sources else "")
