"""Tool calls in completions, the toolbox's handling of what tools do, and the rounds' limits."""

import asyncio
import json

import pytest

from plugins.nonebot_plugin_glm_chat.chat.prompt import estimate_tokens
from plugins.nonebot_plugin_glm_chat.glm.completion import (
    Completion,
    StreamAssembler,
    ToolCall,
    Usage,
    completion_from_json,
)
from plugins.nonebot_plugin_glm_chat.glm.errors import PromptTooLongError
from plugins.nonebot_plugin_glm_chat.tools.base import Tool, ToolContext, ToolFailed
from plugins.nonebot_plugin_glm_chat.tools.rounds import answer_with_tools
from plugins.nonebot_plugin_glm_chat.tools.toolbox import Toolbox


def frame(**delta) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta}]})


def test_streamed_tool_calls_are_assembled_from_pieces_by_index():
    stream = StreamAssembler()
    stream.feed(
        frame(
            tool_calls=[{"index": 0, "id": "a", "function": {"name": "one", "arguments": '{"x"'}}]
        )
    )
    stream.feed(
        frame(tool_calls=[{"index": 1, "id": "b", "function": {"name": "two", "arguments": ""}}])
    )
    stream.feed(frame(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]))
    stream.feed(frame(tool_calls=[{"index": 1, "function": {"arguments": {"y": 2}}}]))
    stream.feed(json.dumps({"choices": [{"index": 0, "finish_reason": "tool_calls", "delta": {}}]}))
    completion = stream.result()
    assert completion.content == ""
    assert completion.tool_calls == [
        ToolCall("a", "one", '{"x": 1}'),
        ToolCall("b", "two", '{"y": 2}'),
    ]


def test_a_sync_answer_may_carry_tool_calls_and_no_text():
    body = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                        {"type": "function", "function": {"arguments": "{}"}},  # no name: dropped
                    ],
                },
            }
        ]
    }
    assert completion_from_json(body).tool_calls == [ToolCall("c1", "f", "{}")]


def tool(name: str, run, timeout: float = 1.0) -> Tool:
    return Tool(name, f"the {name} tool", run, timeout=timeout)


async def test_the_toolbox_turns_every_failure_into_text_for_the_model():
    async def slow(arguments, context):
        await asyncio.sleep(5)
        return "late"

    async def refuses(arguments, context):
        raise ToolFailed("no such city")

    async def buggy(arguments, context):
        return {}["missing"]

    async def long(arguments, context):
        return "x" * 10_000

    box = Toolbox(
        [
            tool("slow", slow, 0.05),
            tool("refuses", refuses),
            tool("buggy", buggy),
            tool("long", long),
        ]
    )
    context = ToolContext("group:1")
    assert (
        await box.run(ToolCall("1", "slow"), context)
        == "error: slow did not finish within 0.05 seconds"
    )
    assert await box.run(ToolCall("2", "refuses"), context) == "error: no such city"
    assert await box.run(ToolCall("3", "buggy"), context) == "error: buggy failed (KeyError)"
    assert await box.run(ToolCall("4", "refuses", "[1]"), context) == (
        "error: the arguments of refuses must be a JSON object"
    )
    clipped = await box.run(ToolCall("5", "long"), context, limit=100)
    assert len(clipped) == 100 and clipped.endswith("…(truncated)")


async def test_a_cancelled_question_cancels_its_tool():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def waits(arguments, context):
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ""

    box = Toolbox([tool("waits", waits, 60)])
    task = asyncio.create_task(box.run(ToolCall("1", "waits"), ToolContext("group:1")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_tool_results_share_a_budget_and_usage_counts_every_round():
    async def big(arguments, context):
        return "字" * 5000

    asked: list[list[dict]] = []

    async def ask(messages, offered):
        asked.append(list(messages))
        if offered and len(asked) <= 2:
            calls = [ToolCall(f"{len(asked)}-{i}", "big") for i in range(7)]
            return Completion("", usage=Usage(10, 1, 11), tool_calls=calls)
        return Completion("好了", usage=Usage(10, 1, 11))

    start = [{"role": "user", "content": "hi"}]
    done = await answer_with_tools(
        ask,
        start,
        Toolbox([tool("big", big)]),
        ToolContext("private:1"),
        rounds=3,
        token_budget=3000,
        measure=estimate_tokens,
    )
    assert done.content == "好了" and done.usage == Usage(30, 3, 33)
    results = [m["content"] for m in asked[-1] if m["role"] == "tool"]
    assert len(results) == 14
    assert results[5:7] == ["error: at most 5 tool calls at once"] * 2  # per round
    assert sum(len(r) for r in results) < 3000 * 2 + 14 * 200  # the budget, give or take
    assert start == [{"role": "user", "content": "hi"}]  # the caller's list is left alone


async def test_tool_results_too_long_for_the_model_are_cut_short_and_the_tool_runs_once():
    runs = []

    async def page(arguments, context):
        runs.append(1)
        return "页" * 1500

    asked: list[tuple[list[dict], bool]] = []

    async def ask(messages, offered):
        asked.append((list(messages), offered is not None))
        if len(asked) == 1:
            return Completion("", tool_calls=[ToolCall("c1", "page")])
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if len(results[0]) > 200:
            raise PromptTooLongError("prompt too long", code="1261")
        return Completion("读完了")

    done = await answer_with_tools(
        ask,
        [{"role": "user", "content": "读这页"}],
        Toolbox([tool("page", page)]),
        ToolContext("group:1"),
        rounds=3,
        token_budget=3000,
        measure=estimate_tokens,
    )
    assert done.content == "读完了" and runs == [1]
    assert [offered for _, offered in asked] == [True, True, False]  # the retry offers none
