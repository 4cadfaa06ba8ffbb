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


@dataclass(frozen=True)
class ChatOptions:
    """What a chat's admins set: persona, model, mode, on/off, web search."""

    persona: str | None = None  # None: GLM_SYSTEM_PROMPT
    model: str | None = None  # None: GLM_MODEL
    personal: bool = False  # each member has their own conversation in the group
    enabled: bool = True
    web_search: bool = False
