"""Rounds of tool calls: ask, run what the model calls, send the results back, ask again.

At most ``rounds`` rounds offer the tools; the request after the last one offers none, so the
model has to answer. A round's calls run one after another, in the order the model gave them.
What the tools returned goes to the model only: the stored turn keeps the question and the
final answer (see ``ChatService``), so tool output never grows a conversation's context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..glm.completion import Completion, Usage
from ..glm.errors import PromptTooLongError, UpstreamError
from .base import ToolContext
from .toolbox import RESULT_CHARS, Toolbox, clip

# Asks the model with these messages, offering these tools (None: none).
Ask = Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], Awaitable[Completion]]
CALLS_PER_ROUND = 5  # calls of one round that are run; the rest are answered with an error
SHORT_RESULT = 200  # characters each result keeps when they did not fit the model
ROUNDS_SPENT = "（这个问题需要的工具调用太多，没能完成。换个问法试试？）"


async def answer_with_tools(
    ask: Ask,
    messages: list[dict[str, Any]],
    toolbox: Toolbox,
    context: ToolContext,
    *,
    rounds: int,
    token_budget: int,
    measure: Callable[[str], int],
) -> Completion:
    """The model's final answer to ``messages``, after up to ``rounds`` rounds of tool calls.

    Tool results share ``token_budget`` (as ``measure`` estimates a text's tokens): once it is
    spent, the rest are cut short.
    The completion's usage counts every round; sources a web search found are listed with it.
    """
    messages = list(messages)
    usage = Usage()
    left = token_budget
    for round_number in range(rounds + 1):
        offered = toolbox.specs() if round_number < rounds and len(toolbox) else None
        if round_number:
            completion = await _ask_after_tools(ask, messages, offered)
        else:
            completion = await ask(messages, offered)
        usage = _sum(usage, completion.usage)
        if not completion.tool_calls:
            break
        if offered is None:  # the model still calls tools with none offered
            completion.content = completion.content or ROUNDS_SPENT
            break
        messages.append(
            {
                "role": "assistant",
                "content": completion.content or None,
                "tool_calls": [call.as_message_part() for call in completion.tool_calls],
            }
        )
        for index, call in enumerate(completion.tool_calls):
            if index >= CALLS_PER_ROUND:
                result = f"error: at most {CALLS_PER_ROUND} tool calls at once"
            else:
                result = await toolbox.run(
                    call, context, limit=max(200, min(RESULT_CHARS, 2 * left))
                )
            left = max(0, left - measure(result))
            messages.append({"role": "tool", "content": result, "tool_call_id": call.id})
    completion.usage = usage
    completion.tool_calls = []
    completion.web_search = [*completion.web_search, *context.sources]
    return completion


async def _ask_after_tools(
    ask: Ask, messages: list[dict[str, Any]], offered: list[dict[str, Any]] | None
) -> Completion:
    """Ask with tool results in the messages. Too long for the model (our estimate was too
    generous): ask once more for the answer, every result cut short, no tools offered. The
    error must not reach the caller as a prompt too long: it would retry the whole question,
    and the tools (a drawing) would run again."""
    try:
        return await ask(messages, offered)
    except PromptTooLongError:
        shorter = [
            {**m, "content": clip(m["content"], SHORT_RESULT)} if m["role"] == "tool" else m
            for m in messages
        ]
        try:
            return await ask(shorter, None)
        except PromptTooLongError as error:
            raise UpstreamError("the tool results do not fit the model's context") from error


def _sum(total: Usage, more: Usage) -> Usage:
    return Usage(
        total.prompt_tokens + more.prompt_tokens,
        total.completion_tokens + more.completion_tokens,
        total.total_tokens + more.total_tokens,
    )
