"""The chat service: one turn of a conversation, from stored context to stored answer.

It does not order work: each chat's queue (``queue.py``) runs one turn of a conversation at a
time, so a turn always sees every turn before it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ..config import DEFAULT_VISION_MODEL
from ..glm.client import CallMode, GLMClient, TextSink
from ..glm.completion import Completion
from ..glm.errors import MessageTooLongError, PromptTooLongError
from ..memory.models import ChatOptions, Speaker, Turn
from ..memory.store import ContextStore
from .prompt import GROUP_NOTE, build_messages, history_tokens

IMAGE_PLACEHOLDER = "[图片]"
PERSONA_LIMIT = 2000  # characters a chat's persona may have
OPTIONS_CACHED = 4096  # chats whose settings stay in memory; the oldest read is dropped
IMAGE_ONLY_QUESTION = "请看看这张图片。"
WEB_SEARCH_TOOL = {"type": "web_search", "web_search": {"enable": True, "search_result": True}}


@dataclass(frozen=True)
class ChatSettings:
    """What shapes each request; taken from ``Config`` at startup."""

    system_prompt: str
    model: str
    vision_model: str = DEFAULT_VISION_MODEL
    call_mode: CallMode = "stream"
    history_turns: int = 20
    context_tokens: int = 6000
    thinking: str | None = None


@dataclass(frozen=True)
class Question:
    """One message to answer."""

    conversation: str  # whose context: group:1, group:1:42 (personal mode), private:42
    text: str
    speaker: Speaker | None = None  # set where several people share the context
    scope: str | None = None  # the chat whose settings and usage apply (default: conversation)
    images: tuple[str, ...] = ()  # image URLs (or base64) for the vision model

    @property
    def chat(self) -> str:
        return self.scope or self.conversation

    def stored_text(self) -> str:
        """The question as the context keeps it: images become a short placeholder."""
        marks = " ".join([IMAGE_PLACEHOLDER] * len(self.images))
        return " ".join(part for part in (self.text, marks) if part)


@dataclass(frozen=True)
class ConversationStatus:
    model: str
    call_mode: str
    turns: int
    tokens: int


def persona_problem(persona: str) -> str | None:
    """Why ``persona`` cannot be a chat's persona (one Chinese sentence), or None."""
    if len(persona) > PERSONA_LIMIT:
        return f"人设太长了（{len(persona)} 字），请控制在 {PERSONA_LIMIT} 字以内。"
    return None


def week_start(today: date) -> str:
    """The first day of the 7 days that end with ``today`` (``YYYY-MM-DD``)."""
    return (today - timedelta(days=6)).isoformat()


def group_key(group_id: int | str) -> str:
    return f"group:{group_id}"


def member_key(group_id: int | str, user_id: int | str) -> str:
    """A member's own conversation inside a group in personal mode."""
    return f"group:{group_id}:{user_id}"


def private_key(user_id: int | str) -> str:
    return f"private:{user_id}"


class ChatService:
    """Answers messages and keeps each conversation's turns and each chat's settings."""

    def __init__(self, store: ContextStore, client: GLMClient, settings: ChatSettings) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self._options: dict[str, ChatOptions] = {}  # insertion order: oldest first

    async def options(self, chat: str) -> ChatOptions:
        """A chat's settings (cached: read once, written through)."""
        options = self._options.get(chat)
        if options is None:
            options = await self.store.options(chat)
            if len(self._options) >= OPTIONS_CACHED:
                del self._options[next(iter(self._options))]
            self._options[chat] = options
        return options

    async def update_options(self, chat: str, **changes: Any) -> ChatOptions:
        options = dataclasses.replace(await self.options(chat), **changes)
        await self.store.save_options(chat, options)
        self._options[chat] = options
        return options

    def model_for(self, options: ChatOptions, question: Question | None = None) -> str:
        if question is not None and question.images:
            return self.settings.vision_model
        return options.model or self.settings.model

    async def answer(
        self,
        question: Question,
        hand_over: Callable[[Completion], Awaitable[bool]],
        on_text: TextSink | None = None,
    ) -> Completion:
        """Answer ``question`` and hand the answer over (to QQ, to a browser); the turn is
        stored only when ``hand_over`` says it got through (its tokens are counted either
        way). A failed call stores nothing. ``on_text`` sees the answer as it streams."""
        options = await self.options(question.chat)
        history = await self.store.recent(question.conversation, self.settings.history_turns)
        completion = await self._complete_fitting(question, options, history, on_text)
        if await hand_over(completion):
            await self.store.append_turn(
                question.conversation,
                Turn(question.stored_text(), completion.content, question.speaker),
                model=self.model_for(options, question),
                usage=completion.usage,
                scope=question.scope,
            )
        else:  # paid for all the same
            await self.store.count_usage(question.chat, completion.usage)
        return completion

    async def _complete_fitting(
        self,
        question: Question,
        options: ChatOptions,
        history: list[Turn],
        on_text: TextSink | None,
    ) -> Completion:
        budget = self.settings.context_tokens
        try:
            return await self._call_within(question, options, history, budget, on_text)
        except MessageTooLongError:
            raise
        except PromptTooLongError:
            # Our estimate was too generous for this model: trim much harder, once.
            return await self._call_within(question, options, history, budget // 3, on_text)

    async def _call_within(
        self,
        question: Question,
        options: ChatOptions,
        history: list[Turn],
        budget: int,
        on_text: TextSink | None,
    ) -> Completion:
        """One call with as much history as fits ``budget``; a prompt the model still finds
        too long without any history means the message itself is too long."""
        messages = self._messages(question, options, history, budget)
        try:
            return await self._call(question, options, messages, on_text)
        except PromptTooLongError as error:
            if _carries_history(messages):
                raise
            raise MessageTooLongError(
                error.message, code=error.code, status=error.status
            ) from error

    def _messages(
        self, question: Question, options: ChatOptions, history: list[Turn], budget: int
    ) -> list[dict[str, Any]]:
        settings = self.settings
        system_prompt = options.persona or settings.system_prompt
        if question.speaker is not None:
            system_prompt += GROUP_NOTE
        return build_messages(
            system_prompt,
            history,
            question.text or (IMAGE_ONLY_QUESTION if question.images else ""),
            question.speaker,
            images=question.images,
            max_turns=settings.history_turns,
            token_budget=budget,
        )

    async def _call(
        self,
        question: Question,
        options: ChatOptions,
        messages: list[dict[str, Any]],
        on_text: TextSink | None,
    ) -> Completion:
        settings = self.settings
        request_options: dict[str, Any] = {}
        if settings.thinking:
            request_options["thinking"] = {"type": settings.thinking}
        if options.web_search:
            request_options["tools"] = [WEB_SEARCH_TOOL]
        return await self.client.complete(
            messages,
            model=self.model_for(options, question),
            mode=settings.call_mode,
            options=request_options or None,
            conversation=question.conversation,
            on_text=on_text,
        )

    async def recent_tokens(self, chat: str) -> tuple[int, int]:
        """Tokens a chat spent today and over the last 7 days (today included)."""
        today = date.today()
        rows = await self.store.usage_since(week_start(today), chat)
        week = sum(tokens for _, _, tokens in rows)
        return sum(t for _, day, t in rows if day == today.isoformat()), week

    async def reset(self, conversation: str, *, with_members: bool = False) -> int:
        """Forget the conversation (``with_members``: and its members' personal ones)."""
        return await self.store.reset(conversation, with_members=with_members)

    async def status(self, conversation: str, chat: str | None = None) -> ConversationStatus:
        settings = self.settings
        options = await self.options(chat or conversation)
        history = await self.store.recent(conversation, settings.history_turns)
        return ConversationStatus(
            model=self.model_for(options),
            call_mode=settings.call_mode,
            turns=await self.store.count(conversation),
            tokens=history_tokens(history),
        )


def _carries_history(messages: list[dict[str, Any]]) -> bool:
    """Whether a request holds any past turn (an assistant message) besides the new message."""
    return any(message["role"] == "assistant" for message in messages)
