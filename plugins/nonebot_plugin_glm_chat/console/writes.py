"""What the console changes, through the same services as the ``/glm`` commands and in the
chat's own queue: a change made while an answer is being written applies right after it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ..chat.service import Question, persona_problem
from ..glm.client import TextSink
from ..glm.completion import Completion
from ..memory.models import ChatOptions
from ..runtime import Services

CHAT_KEY = re.compile(r"(group|private):[1-9][0-9]{0,19}|console:playground")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
CHIME_MAX = 100
PLAYGROUND = "console:playground"
T = TypeVar("T")


class ChangeRefused(ValueError):
    """A change that cannot be made; the message says why, in Chinese, for the page."""


class SettingsPatch(BaseModel):
    """``PATCH /glm/api/chats/{chat}``: any of these; ``null`` or ``""`` resets persona/model."""

    model_config = ConfigDict(extra="forbid")

    persona: str | None = None
    model: str | None = None
    mode: Literal["shared", "personal"] | None = None
    enabled: bool | None = None
    search: bool | None = None
    tools: bool | None = None
    # Checked in ``option_changes``, so that a bad value is refused in a Chinese sentence.
    listen: Any = None  # groups: true / false
    chime: Any = None  # groups: an integer percent, 0 to 100


def known_chat(chat: str) -> bool:
    return CHAT_KEY.fullmatch(chat) is not None


def option_changes(chat: str, patch: SettingsPatch) -> dict[str, Any]:
    """The ``ChatOptions`` fields a patch sets; raises ``ChangeRefused`` for a bad value."""
    given = patch.model_fields_set
    changes: dict[str, Any] = {}
    if "persona" in given:
        persona = (patch.persona or "").strip() or None
        if persona and (problem := persona_problem(persona)):
            raise ChangeRefused(problem)
        changes["persona"] = persona
    if "model" in given:
        model = (patch.model or "").strip() or None
        if model is not None and MODEL_NAME.fullmatch(model) is None:
            raise ChangeRefused("模型名只能包含字母、数字和 . _ : / -，最长 64 个字符。")
        changes["model"] = model
    if "mode" in given and patch.mode is not None:
        if not chat.startswith("group:"):
            raise ChangeRefused("只有群聊可以切换共用或每人一个上下文。")
        changes["personal"] = patch.mode == "personal"
    if "enabled" in given and patch.enabled is not None:
        changes["enabled"] = patch.enabled
    if "search" in given and patch.search is not None:
        changes["web_search"] = patch.search
    if "tools" in given and patch.tools is not None:
        changes["tools"] = patch.tools
    if "listen" in given and patch.listen is not None:
        if not chat.startswith("group:"):
            raise ChangeRefused("只有群聊可以开关旁听。")
        if not isinstance(patch.listen, bool):
            raise ChangeRefused("旁听只能是 true（开启）或 false（关闭）。")
        changes["listen"] = patch.listen
    if "chime" in given and patch.chime is not None:
        if not chat.startswith("group:"):
            raise ChangeRefused("只有群聊可以设置插话概率。")
        changes["chime"] = chime_percent(patch.chime)
    return changes


def chime_percent(value: Any) -> int:
    """A chime setting: an integer from 0 to 100 (a JSON number; not ``true``, ``5.5`` or
    ``"5"``); raises ``ChangeRefused`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CHIME_MAX:
        raise ChangeRefused(f"插话概率要是 0 到 {CHIME_MAX} 的整数（百分比），例如 5。")
    return value


async def _in_turn(services: Services, chat: str, run: Callable[[], Awaitable[T]]) -> T:
    """Run ``run`` in ``chat``'s queue, after everything that arrived before it (raises
    ``QueueClosedError`` when the bot is shutting down)."""
    return await services.queues.submit(chat, run)


async def change_settings(services: Services, chat: str, patch: SettingsPatch) -> ChatOptions:
    changes = option_changes(chat, patch)
    if not changes:
        return await services.chat.options(chat)
    return await _in_turn(services, chat, lambda: services.chat.update_options(chat, **changes))


async def reset_chat(services: Services, chat: str) -> int:
    """Forget a chat's context (in a group, its members' own conversations too)."""
    return await _in_turn(services, chat, lambda: services.chat.reset(chat, with_members=True))


async def ask_playground(
    services: Services,
    message: str,
    *,
    on_text: TextSink | None = None,
    delivered: Callable[[], bool] = lambda: True,
) -> Completion:
    """Ask the model in the console's own conversation; the turn is kept when the answer
    reached the browser (``delivered``)."""
    limit = services.config.glm_max_input_chars
    text = message.strip()
    if not text:
        raise ChangeRefused("消息是空的。")
    if len(text) > limit:
        raise ChangeRefused(f"消息太长（{len(text)} 字），最多 {limit} 字。")

    async def hand_over(_: Completion) -> bool:
        return delivered()

    question = Question(PLAYGROUND, text)

    async def run() -> Completion:
        if not delivered():  # the browser left while this waited its turn: no call
            raise ChangeRefused("浏览器已经离开。")
        return await services.chat.answer(question, hand_over, on_text)

    return await _in_turn(services, PLAYGROUND, run)
