"""What a question carries besides its own text: the group's background and the message it
quotes, laid out as the model reads them. Pure functions, free of NoneBot.

Every line a member controls is written under a label (``nickname(qq): text``, the text laid out
by ``clean_text``), so a line at column 0 is always the bot's: the section markers below cannot
be imitated by anyone in the group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..memory.models import Heard, Speaker
from .labels import clean_text, strip_invisible

BACKGROUND_HEADER = "【群里最近的消息（没有@你）】"
QUOTE_MARK = "【引用】"
HEARD_CHARS = 300  # a background message longer than this is cut
QUOTE_CHARS = 500
CUT = "…"
# The user message of an unprompted remark, after the background it speaks to.
CHIME_CUE = "【没有人@你】请像群友一样，就上面的聊天自然地插一句话：简短，不要提到这条提示。"


@dataclass(frozen=True)
class Quote:
    """The message a question replies to."""

    text: str
    speaker: Speaker | None = None  # None in private chat (the user, or the bot, wrote it)


def shortened(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + CUT


def heard_line(heard: Heard) -> str:
    """One background message: ``nickname(qq): text``."""
    return f"{heard.speaker.label()}: {clean_text(shortened(heard.text, HEARD_CHARS))}"


def quote_lines(quote: Quote) -> str:
    """The quoted message, under its writer's label when known."""
    text = shortened(quote.text, QUOTE_CHARS)
    if quote.speaker is None:
        return (
            QUOTE_MARK
            + "\n"
            + "\n".join("  " + strip_invisible(line) for line in text.splitlines())
        )
    return f"{QUOTE_MARK}{quote.speaker.label()}: {clean_text(text)}"


def background_block(lines: Sequence[str]) -> str:
    """Background lines under their header ("" when there are none)."""
    return "\n".join([BACKGROUND_HEADER, *lines]) if lines else ""


def with_context(context: str, message: str) -> str:
    """A user message's text: what went with it, then the message itself."""
    return f"{context}\n{message}" if context else message
