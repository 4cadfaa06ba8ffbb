"""The chat service: one turn of a conversation, from stored context to stored answer."""

from __future__ import annotations

from dataclasses import dataclass

from .client import CallMode, GLMClient
from .completion import Completion
from .errors import PromptTooLongError
from .locks import KeyedLocks
from .models import Speaker, Turn
from .prompt import GROUP_NOTE, build_messages, history_tokens
from .store import ContextStore


@dataclass(frozen=True)
class ChatSettings:
    """What shapes each request; taken from ``Config`` at startup."""

    system_prompt: str
    model: str
    call_mode: CallMode = "stream"
    history_turns: int = 20
    context_tokens: int = 6000
    thinking: str | None = None


@dataclass(frozen=True)
class ConversationStatus:
    model: str
    call_mode: str
    turns: int
    tokens: int


def group_key(group_id: int | str) -> str:
    return f"group:{group_id}"


def private_key(user_id: int | str) -> str:
    return f"private:{user_id}"


class ChatService:
    """Answers messages, one at a time per conversation, each seeing the turns before it."""

    def __init__(self, store: ContextStore, client: GLMClient, settings: ChatSettings) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self._locks = KeyedLocks()

    def _system_prompt(self, speaker: Speaker | None) -> str:
        return self.settings.system_prompt + (GROUP_NOTE if speaker else "")

    async def ask(self, conversation: str, question: str, speaker: Speaker | None) -> Completion:
        """Answer ``question`` and store the turn; on failure nothing is stored.

        ``speaker`` is set in groups, where the model must tell members apart.
        """
        settings = self.settings
        async with self._locks.hold(conversation):
            history = await self.store.recent(conversation, settings.history_turns)
            budget = settings.context_tokens
            try:
                completion = await self._complete(conversation, history, question, speaker, budget)
            except PromptTooLongError:
                # Our estimate was too generous for this model: trim much harder, once.
                completion = await self._complete(
                    conversation, history, question, speaker, budget // 3
                )
            turn = Turn(question, completion.content, speaker)
            await self.store.append_turn(
                conversation, turn, model=settings.model, usage=completion.usage
            )
            return completion

    async def _complete(
        self,
        conversation: str,
        history: list[Turn],
        question: str,
        speaker: Speaker | None,
        budget: int,
    ) -> Completion:
        settings = self.settings
        messages = build_messages(
            self._system_prompt(speaker),
            history,
            question,
            speaker,
            max_turns=settings.history_turns,
            token_budget=budget,
        )
        options = {"thinking": {"type": settings.thinking}} if settings.thinking else None
        return await self.client.complete(
            messages,
            model=settings.model,
            mode=settings.call_mode,
            options=options,
            conversation=conversation,
        )

    async def reset(self, conversation: str) -> int:
        """Forget the conversation; waits for an answer in progress so it is not re-added."""
        async with self._locks.hold(conversation):
            return await self.store.reset(conversation)

    async def status(self, conversation: str) -> ConversationStatus:
        settings = self.settings
        history = await self.store.recent(conversation, settings.history_turns)
        return ConversationStatus(
            model=settings.model,
            call_mode=settings.call_mode,
            turns=await self.store.count(conversation),
            tokens=history_tokens(history),
        )
