"""Plain records shared by the store, the prompt builder and the chat service."""

from __future__ import annotations

from dataclasses import dataclass

from ..chat.labels import clean_name


@dataclass(frozen=True)
class Speaker:
    """Who said a group message, as the model sees it: ``nickname(qq)``."""

    user_id: str
    name: str  # as captured; older rows hold raw names, so the label cleans it again

    def label(self) -> str:
        """``nickname(qq)``, the name cleaned so that it cannot imitate a label itself."""
        return f"{clean_name(self.name, self.user_id)}({self.user_id})"


@dataclass(frozen=True)
class Turn:
    """One exchange: a user's message and the answer to it, stored together or not at all."""

    question: str
    answer: str
    speaker: Speaker | None = None
    # What went with the question, as the model read it: the group's background, a quote.
    context: str = ""


@dataclass(frozen=True)
class NumberedTurn:
    """A stored turn with its place in the conversation (``seq`` counts from 1)."""

    seq: int
    created_at: float
    turn: Turn


@dataclass(frozen=True)
class Heard:
    """A group message that was not addressed to the bot, kept as background."""

    seq: int  # arrival order (see ``ReadingAlong.next_seq``)
    speaker: Speaker
    text: str  # as the model reads it: images as [图片]
    message_id: str = ""
    at: float = 0.0  # wall clock


@dataclass(frozen=True)
class Summary:
    """A conversation's running summary of the turns that left its history window."""

    text: str
    upto: int  # the last turn folded in (its seq)
    upto_at: float  # that turn's created_at: a reset since then is noticed
    turns: int  # how many turns it covers
    updated_at: float = 0.0


@dataclass(frozen=True)
class ChatOptions:
    """What a chat's admins set: persona, model, mode, on/off, web search, reading along,
    unprompted remarks, tools."""

    persona: str | None = None  # None: GLM_SYSTEM_PROMPT
    model: str | None = None  # None: GLM_MODEL
    personal: bool = False  # each member has their own conversation in the group
    enabled: bool = True
    web_search: bool = False
    listen: bool = True  # keep the group's messages as background
    chime: int = 0  # percent chance of an unprompted remark per message heard
    tools: bool | None = None  # whether the model may call the bot's tools; None: GLM_TOOLS


DEFAULT_OPTIONS = ChatOptions()


@dataclass(frozen=True)
class ChatListing:
    """One chat as the console lists it."""

    chat: str  # group:1, private:2, console:playground
    turns: int  # kept now (a reset forgets them)
    last_at: float  # when the last turn was stored (0: never)
    tokens_today: int
    tokens_week: int  # the last 7 days, today included
    options: ChatOptions


@dataclass(frozen=True)
class StoredTurn:
    """A turn as it was stored: where, when, with which model, at what cost."""

    conversation: str
    turn: Turn
    model: str
    prompt_tokens: int
    completion_tokens: int
    created_at: float


@dataclass(frozen=True)
class DayUsage:
    """Tokens a chat spent on one local day."""

    chat: str
    day: str  # YYYY-MM-DD
    tokens: int
    turns: int
