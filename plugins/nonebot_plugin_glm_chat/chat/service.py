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
from ..memory.models import ChatOptions, Heard, Speaker, Summary, Turn
from ..memory.store import ContextStore
from ..tools.base import Tool, ToolContext
from ..tools.rounds import answer_with_tools
from ..tools.toolbox import Toolbox
from .context import CHIME_CUE, Quote
from .prompt import GROUP_NOTE, Prompt, build_prompt, estimate_tokens, history_tokens
from .reading import ReadingAlong
from .summary import Summarizer

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
    tools: bool = True  # whether chats offer the bot's tools unless their admins said (GLM_TOOLS)
    tool_rounds: int = 3


@dataclass(frozen=True)
class Question:
    """One message to answer."""

    conversation: str  # whose context: group:1, group:1:42 (personal mode), private:42
    text: str
    speaker: Speaker | None = None  # set where several people share the context
    scope: str | None = None  # the chat whose settings and usage apply (default: conversation)
    images: tuple[str, ...] = ()  # image URLs (or base64) for the vision model
    # In a group: the background heard before this number goes with it (None: no background).
    heard_until: int | None = None
    quote: Quote | None = None
    remark: bool = False  # an unprompted remark: nobody asked

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
    summary: Summary | None = None


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

    def __init__(
        self,
        store: ContextStore,
        client: GLMClient,
        settings: ChatSettings,
        *,
        reading: ReadingAlong | None = None,
        summarizer: Summarizer | None = None,
        tools: Callable[[], list[Tool]] | None = None,
        search_tool: Tool | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.reading = reading
        self.summarizer = summarizer
        self.tools = tools  # the tools chats may offer (built-in first, then MCP servers')
        self.search_tool = search_tool  # web search as a function, for chats with tools on
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
        """Change a chat's settings; turning reading along off forgets what it kept."""
        options = dataclasses.replace(await self.options(chat), **changes)
        await self.store.save_options(chat, options)
        self._options[chat] = options
        if changes.get("listen") is False and self.reading is not None:
            if self.summarizer is not None:  # a fold under way would keep what is forgotten
                await self.summarizer.stop(chat)
            await self.reading.forget(chat)
        return options

    def tools_on(self, options: ChatOptions) -> bool:
        """Whether a chat offers the bot's tools (its admins' choice, else GLM_TOOLS)."""
        return self.settings.tools if options.tools is None else options.tools

    def model_for(self, options: ChatOptions, question: Question | None = None) -> str:
        if question is not None and question.images:
            return self.settings.vision_model
        return options.model or self.settings.model

    async def answer(
        self,
        question: Question,
        hand_over: Callable[[Completion], Awaitable[bool]],
        on_text: TextSink | None = None,
        act: ToolContext | None = None,
    ) -> Completion:
        """Answer ``question`` and hand the answer over (to QQ, to a browser); the turn is
        stored only when ``hand_over`` says it got through (its tokens are counted either
        way). A failed call stores nothing. ``on_text`` sees the answer as it streams;
        ``act`` is what tools may do in the chat (default: nothing but return text)."""
        completion = await self._respond(question, hand_over, on_text, act)
        assert completion is not None
        return completion

    async def remark(
        self, chat: str, heard_until: int, hand_over: Callable[[Completion], Awaitable[bool]]
    ) -> Completion | None:
        """An unprompted remark on the group's background heard before ``heard_until``, kept
        in the group's shared conversation like a turn; None when there was nothing new to
        speak to."""
        question = Question(chat, CHIME_CUE, heard_until=heard_until, remark=True)
        return await self._respond(question, hand_over, None, None)

    async def _respond(
        self,
        question: Question,
        hand_over: Callable[[Completion], Awaitable[bool]],
        on_text: TextSink | None,
        act: ToolContext | None,
    ) -> Completion | None:
        options = await self.options(question.chat)
        background = await self._background(question, options)
        if question.remark and not background:
            return None
        summary, history = await self._recall(question.conversation)
        context = _Context(history, background, summary.text if summary else None)
        call = _Call(question, options, on_text, act)
        completion, prompt = await self._complete_fitting(call, context)
        if await hand_over(completion):
            await self.store.append_turn(
                question.conversation,
                Turn(question.stored_text(), completion.content, question.speaker, prompt.context),
                model=self.model_for(options, question),
                usage=completion.usage,
                scope=question.scope,
                heard=question.heard_until,
            )
            # Outside the summary there were fewer turns than the window holds: still none to fold.
            if self.summarizer is not None and len(history) >= self.settings.history_turns:
                self.summarizer.fold_later(question.conversation, question.chat)
        else:  # paid for all the same
            await self.store.count_usage(question.chat, completion.usage)
        return completion

    async def _background(self, question: Question, options: ChatOptions) -> list[Heard]:
        if self.reading is None or question.heard_until is None or not options.listen:
            return []
        return await self.reading.since(question.chat, question.conversation, question.heard_until)

    async def _recall(self, conversation: str) -> tuple[Summary | None, list[Turn]]:
        """The conversation's summary (None with GLM_SUMMARY=off) and the turns of its
        history window after it."""
        limit = self.settings.history_turns
        if self.summarizer is None:
            return None, await self.store.recent(conversation, limit)
        return await self.store.context(conversation, limit)

    async def _complete_fitting(self, call: _Call, context: _Context) -> tuple[Completion, Prompt]:
        budget = self.settings.context_tokens
        try:
            return await self._call_within(call, context, budget)
        except MessageTooLongError:
            raise
        except PromptTooLongError:
            # Our estimate was too generous for this model: trim much harder, once.
            return await self._call_within(call, context, budget // 3)

    async def _call_within(
        self, call: _Call, context: _Context, budget: int
    ) -> tuple[Completion, Prompt]:
        """One call with as much context as fits ``budget``; a prompt the model still finds
        too long without any history means the message itself is too long."""
        prompt = self._prompt(call.question, call.options, context, budget)
        try:
            return await self._call(call, prompt.messages, budget), prompt
        except PromptTooLongError as error:
            if prompt.turns or prompt.background or prompt.summary:  # trimmable: not its fault
                raise
            raise MessageTooLongError(
                error.message, code=error.code, status=error.status
            ) from error

    def _prompt(
        self, question: Question, options: ChatOptions, context: _Context, budget: int
    ) -> Prompt:
        settings = self.settings
        system_prompt = options.persona or settings.system_prompt
        if question.speaker is not None or question.remark:
            system_prompt += GROUP_NOTE
        return build_prompt(
            system_prompt,
            context.history,
            question.text or (IMAGE_ONLY_QUESTION if question.images else ""),
            question.speaker,
            images=question.images,
            background=context.background,
            quote=question.quote,
            summary=context.summary,
            max_turns=settings.history_turns,
            token_budget=budget,
        )

    async def _call(self, call: _Call, messages: list[dict[str, Any]], budget: int) -> Completion:
        question, options = call.question, call.options
        request_options: dict[str, Any] = {}
        if self.settings.thinking:
            request_options["thinking"] = {"type": self.settings.thinking}
        toolbox = self._toolbox(call)
        if toolbox is None:
            if options.web_search:
                request_options["tools"] = [WEB_SEARCH_TOOL]
            return await self._ask(call, messages, request_options)

        async def ask(
            messages: list[dict[str, Any]], offered: list[dict[str, Any]] | None
        ) -> Completion:
            return await self._ask(call, messages, {**request_options, "tools": offered})

        speaker = question.speaker
        act = call.act or ToolContext(
            question.chat,
            speaker.user_id if speaker else "",
            speaker.name if speaker else "",
        )
        return await answer_with_tools(
            ask,
            messages,
            toolbox,
            act,
            rounds=self.settings.tool_rounds,
            token_budget=budget // 2,
            measure=estimate_tokens,
        )

    def _toolbox(self, call: _Call) -> Toolbox | None:
        """The tools this question may use: none for a remark, a question with images (the
        vision model) or a chat with tools off."""
        question, options = call.question, call.options
        if self.tools is None or question.remark or question.images:
            return None
        if not self.tools_on(options):
            return None
        tools = self.tools()
        if options.web_search and self.search_tool is not None:
            tools = [*tools, self.search_tool]
        return Toolbox(tools)

    async def _ask(
        self, call: _Call, messages: list[dict[str, Any]], request_options: dict[str, Any]
    ) -> Completion:
        offered = {key: value for key, value in request_options.items() if value is not None}
        return await self.client.complete(
            messages,
            model=self.model_for(call.options, call.question),
            mode=self.settings.call_mode,
            options=offered or None,
            conversation=call.question.conversation,
            on_text=call.on_text,
            purpose="remark" if call.question.remark else "answer",
        )

    async def spent_today(self, chat: str, limit: int) -> bool:
        """Whether ``chat`` has spent its daily ``limit`` of tokens (0: no limit)."""
        return limit > 0 and await self.store.tokens_on(chat, date.today().isoformat()) >= limit

    async def recent_tokens(self, chat: str) -> tuple[int, int]:
        """Tokens a chat spent today and over the last 7 days (today included)."""
        today = date.today()
        rows = await self.store.usage_since(week_start(today), chat)
        week = sum(tokens for _, _, tokens in rows)
        return sum(t for _, day, t in rows if day == today.isoformat()), week

    async def reset(
        self, conversation: str, *, with_members: bool = False, heard_until: int | None = None
    ) -> int:
        """Forget the conversation and its summary (``with_members``: and its members'
        personal ones); the group's background heard before ``heard_until`` (default: now)
        will not be sent to it either."""
        removed = await self.store.reset(conversation, with_members=with_members)
        if self.reading is not None and self.reading.on:
            until = heard_until if heard_until is not None else self.reading.next_seq()
            await self.reading.mark(conversation, until, with_members=with_members)
        return removed

    async def status(self, conversation: str, chat: str | None = None) -> ConversationStatus:
        settings = self.settings
        options = await self.options(chat or conversation)
        summary, history = await self._recall(conversation)
        return ConversationStatus(
            model=self.model_for(options),
            call_mode=settings.call_mode,
            turns=await self.store.count(conversation),
            tokens=history_tokens(history),
            summary=summary,
        )


@dataclass(frozen=True)
class _Call:
    """One question being answered, with what its answer may use."""

    question: Question
    options: ChatOptions
    on_text: TextSink | None
    act: ToolContext | None


@dataclass(frozen=True)
class _Context:
    """What a request may carry besides the question."""

    history: list[Turn]
    background: list[Heard]
    summary: str | None
