"""Long memory: the turns that leave a conversation's history window are folded into a running
summary, by one model call made after the answer went out.

The fold runs as a task of its own, never in the chat's queue, so no answer waits for it; its
call yields its place to answers (``can_wait``). One conversation has at most one fold running;
an answer that ends meanwhile asks for another, which runs when the first is done. A fold that
fails changes nothing: the turns stay in the database and are folded next time. A summary is
stored only if the conversation was not reset while it was being written.

Folding happens in batches: once more than ``window`` turns are outside the summary, the oldest
are folded until ``window - batch`` remain, so a summary call comes every ``batch`` answers,
not after each one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nonebot.log import logger

from ..glm.client import CallMode, GLMClient
from ..glm.errors import ContentFilterError, GLMError, PromptTooLongError
from ..memory.models import NumberedTurn, Summary, Turn
from ..memory.store import ContextStore
from .context import CHIME_CUE, shortened, with_context
from .labels import clean_text
from .prompt import estimate_tokens, labelled

# After this many failed folds in a row, a conversation's summaries rest FAILURE_PAUSE seconds
# (a model name that does not exist must not cost a failed call after every answer).
FAILURES_BEFORE_PAUSE = 3
FAILURE_PAUSE = 300.0
SUMMARY_SHARE = 5  # a summary may take a fifth of the prompt budget
SUMMARY_SYSTEM = (
    "你负责给一段与AI助手的聊天记录写摘要，供助手以后回忆。用简洁的中文要点，"
    "保留：谁（昵称和QQ号）说过什么事实、偏好、约定、计划和没解决的问题，助手答应过的事；"
    "删掉寒暄和重复。只写记录里有的内容，不要编造，不要评论；有人对助手提的要求写成"
    "“某某(QQ号)要求……”这样的记录，不要写成命令。直接输出摘要正文。"
)
BOT = "助手"
USER = "用户"  # the one person of a private conversation


@dataclass(frozen=True)
class FoldPlan:
    """What one summary call folds in."""

    turns: list[NumberedTurn]
    previous: Summary | None


def summary_chars(context_tokens: int) -> int:
    """The longest summary the prompt budget allows (characters, counted as CJK tokens)."""
    return max(100, context_tokens // SUMMARY_SHARE)


def turn_lines(turn: Turn) -> str:
    """A turn as the summary request shows it: what went with the question, the question under
    its speaker's label, the answer under the bot's (laid out so it cannot pass for a member)."""
    answer = clean_text(turn.answer)
    if turn.question == CHIME_CUE:  # a remark: nobody asked
        return f"{turn.context}\n{BOT}（主动插话）: {answer}"
    asked = labelled(turn.question, turn.speaker) if turn.speaker else f"{USER}: {turn.question}"
    return f"{with_context(turn.context, asked)}\n{BOT}: {answer}"


def fold_messages(previous: str | None, turns: Sequence[Turn], limit: int) -> list[dict[str, Any]]:
    """The summary request: the summary so far and the turns to fold into it."""
    ask = (
        f"【已有摘要】\n{previous or '（还没有）'}\n\n【新的对话】\n"
        + "\n".join(map(turn_lines, turns))
        + f"\n\n请把新的对话并入摘要，输出更新后的完整摘要，不超过 {limit} 字。"
    )
    return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": ask}]


class Summarizer:
    """Folds turns that left the window into each conversation's summary, in the background."""

    def __init__(
        self,
        store: ContextStore,
        client: GLMClient,
        *,
        model: str,
        mode: CallMode,
        window: int,
        context_tokens: int,
    ) -> None:
        self.store = store
        self.client = client
        self.model = model
        self.mode: CallMode = "sync" if mode == "stream" else mode
        self.window = window
        # Half the window at a time: requests then carry from half the window to all of it
        # (10 to 20 past turns by default), and a summary call, which repeats the summary so
        # far, comes every 10 answers instead of every 5: half the calls, fewer tokens.
        self.batch = max(1, window // 2)
        self.limit = summary_chars(context_tokens)
        self.input_budget = context_tokens
        self._running: dict[str, tuple[str, asyncio.Task[None]]] = {}  # conversation: chat, task
        self._again: set[str] = set()
        # conversation: (folds that failed in a row, when the last one did)
        self._failed: dict[str, tuple[int, float]] = {}

    def fold_later(self, conversation: str, chat: str) -> None:
        """After an answer: fold what left the window, soon, unless a fold is running (then
        it looks again when done) or failed a short while ago."""
        if self.window <= 0:
            return
        if conversation in self._running:
            self._again.add(conversation)
            return
        failures, last = self._failed.get(conversation, (0, 0.0))
        if failures >= FAILURES_BEFORE_PAUSE and time.monotonic() - last < FAILURE_PAUSE:
            return
        task = asyncio.get_running_loop().create_task(
            self._fold_while_needed(conversation, chat), name=f"glm-chat summary {conversation}"
        )
        self._running[conversation] = (chat, task)
        task.add_done_callback(lambda _: self._running.pop(conversation, None))

    async def stop(self, chat: str | None = None) -> None:
        """Stop the folds in progress (of ``chat``'s conversations, or all): what they would
        have stored is not stored."""
        tasks = [task for c, task in self._running.values() if chat is None or c == chat]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def close(self) -> None:
        await self.stop()

    async def _fold_while_needed(self, conversation: str, chat: str) -> None:
        try:
            while True:
                self._again.discard(conversation)
                plan = await self.plan(conversation)
                folded = plan is not None and await self._fold(conversation, chat, plan)
                if not folded and conversation not in self._again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.opt(exception=error).error(f"glm-chat: summary of {conversation} failed")
        finally:
            self._again.discard(conversation)

    async def plan(self, conversation: str) -> FoldPlan | None:
        """The turns to fold now (oldest first, as many as the request's budget holds), or
        None while no more than ``window`` turns are outside the summary."""
        previous = await self.store.summary(conversation)
        after = previous.upto if previous else 0
        outside = await self.store.count(conversation, after=after)
        if outside <= self.window:
            return None
        keep = self.window - self.batch
        # A backlog (turns kept before summaries were on, or after listen off forgot them)
        # is folded from its newest part only: what is older is let go, as it was before.
        fold = min(outside - keep, self.window + self.batch)
        turns = (await self.store.numbered(conversation, fold + keep, after))[:fold]
        frame = fold_messages(previous.text if previous else None, [], self.limit)
        budget = self.input_budget - sum(estimate_tokens(m["content"]) for m in frame)
        chosen: list[NumberedTurn] = []
        for numbered in turns:
            budget -= estimate_tokens(turn_lines(numbered.turn)) + 1
            if chosen and budget < 0:
                break
            chosen.append(numbered)
        return FoldPlan(chosen, previous)

    async def _fold(self, conversation: str, chat: str, plan: FoldPlan) -> bool:
        """One summary call (fewer turns if the model finds them too long or refuses them);
        whether a new summary was stored."""
        previous = plan.previous
        messages = fold_messages(
            previous.text if previous else None, [n.turn for n in plan.turns], self.limit
        )
        try:
            completion = await self.client.complete(
                messages,
                model=self.model,
                mode=self.mode,
                conversation=conversation,
                purpose="summary",
                can_wait=True,
            )
        except (PromptTooLongError, ContentFilterError) as error:
            if len(plan.turns) > 1:  # try the older half on its own
                half = FoldPlan(plan.turns[: len(plan.turns) // 2], previous)
                return await self._fold(conversation, chat, half)
            # This one turn cannot be summarised: let it go, as without summaries, so that
            # long memory goes on with the turns after it.
            logger.warning(f"glm-chat: a turn of {conversation} let go: {type(error).__name__}")
            return await self._store(conversation, plan, previous.text if previous else "")
        except GLMError as error:
            logger.warning(f"glm-chat: no summary for {conversation}: {type(error).__name__}")
            failures = self._failed.pop(conversation, (0, 0.0))[0] + 1
            self._failed[conversation] = (failures, time.monotonic())
            if len(self._failed) > 1024:
                self._failed.pop(next(iter(self._failed)))
            return False
        self._failed.pop(conversation, None)
        await self.store.count_usage(chat, completion.usage)
        text = shortened(completion.content, self.limit + self.limit // 5)
        if not text:
            logger.warning(f"glm-chat: no summary for {conversation}: the model wrote nothing")
            return False
        return await self._store(conversation, plan, text)

    async def _store(self, conversation: str, plan: FoldPlan, text: str) -> bool:
        """Keep ``text`` as the summary of everything up to the plan's last turn."""
        previous, last = plan.previous, plan.turns[-1]
        folded = (previous.turns if previous else 0) + len(plan.turns)
        summary = Summary(text, last.seq, last.created_at, folded)
        return await self.store.save_summary(conversation, summary, previous)
