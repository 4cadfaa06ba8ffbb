"""``ChatQueues`` driven directly: arrival order, places filled late, member lanes, shutdown."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from plugins.glm_chat.chat.queue import ChatQueues, QueueClosedError, Work


def queues(personal: set[str] = frozenset()) -> ChatQueues:
    async def is_personal(chat: str) -> bool:
        return chat in personal

    return ChatQueues(is_personal)


async def start(chat: ChatQueues, *args, **kwargs) -> asyncio.Task:
    """Submit in the background; its place is taken (and its work begun, if it may) on return."""
    task = asyncio.create_task(chat.submit(*args, **kwargs))
    await settle()
    return task


async def settle() -> None:
    """Let every task that can run go as far as it can."""
    for _ in range(5):
        await asyncio.sleep(0)


def job(log: list[str], name: str, gate: asyncio.Event | None = None) -> Callable[[], Awaitable]:
    """Work that waits for ``gate`` (if any), then notes its name."""

    async def run() -> str:
        log.append(f"{name} start")
        if gate is not None:
            await gate.wait()
        log.append(f"{name} end")
        return name

    return run


async def test_work_runs_one_at_a_time_in_place_order_even_when_filled_out_of_order():
    chat, log = queues(), []
    first, second, third = (chat.reserve("group:1") for _ in range(3))
    chat.fill(third, Work(job(log, "c")))
    chat.fill(second, Work(job(log, "b")))
    await asyncio.sleep(0)
    assert log == []  # nothing runs before the first place is filled
    chat.fill(first, Work(job(log, "a")))
    await third.wait()
    assert log == ["a start", "a end", "b start", "b end", "c start", "c end"]
    await settle()
    assert len(chat) == 0  # an idle chat keeps nothing


async def test_a_place_filled_with_nothing_lets_the_ones_behind_it_go():
    chat, log = queues(), []
    skipped, kept = chat.reserve("group:1"), chat.reserve("group:1")
    chat.fill(kept, Work(job(log, "kept")))
    chat.fill(skipped, None)
    await kept.wait()
    assert log == ["kept start", "kept end"]


async def test_chats_do_not_wait_for_each_other():
    chat, log, gate = queues(), [], asyncio.Event()
    slow = await start(chat, "group:1", job(log, "slow", gate))
    assert await chat.submit("group:2", job(log, "other")) == "other"
    assert log == ["slow start", "other start", "other end"]
    gate.set()
    assert await slow == "slow"


async def test_members_have_lanes_and_chat_wide_work_waits_for_all_of_them():
    chat, log = queues(personal={"group:1"}), []
    gate_a = asyncio.Event()
    a1 = await start(chat, "group:1", job(log, "a1", gate_a), member="a")
    a2 = await start(chat, "group:1", job(log, "a2"), member="a")
    assert await chat.submit("group:1", job(log, "b1"), member="b") == "b1"
    whole = await start(chat, "group:1", job(log, "whole"))
    b2 = await start(chat, "group:1", job(log, "b2"), member="b")
    await settle()
    # b1 ran while a1 waited; a2 waits for a1; the chat-wide work and all after it wait too.
    assert log == ["a1 start", "b1 start", "b1 end"]
    gate_a.set()
    await asyncio.gather(a1, a2, whole, b2)
    assert log[3:] == [
        "a1 end",
        "a2 start",
        "a2 end",
        "whole start",
        "whole end",
        "b2 start",
        "b2 end",
    ]


async def test_in_a_shared_chat_member_work_is_chat_wide():
    chat, log, gate = queues(), [], asyncio.Event()
    first = await start(chat, "group:1", job(log, "a", gate), member="a")
    second = await start(chat, "group:1", job(log, "b"), member="b")
    await settle()
    assert log == ["a start"]
    gate.set()
    await asyncio.gather(first, second)


async def test_a_failing_job_is_reported_to_its_submitter_and_the_queue_goes_on():
    chat, log = queues(), []

    async def broken() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await chat.submit("group:1", broken)
    assert await chat.submit("group:1", job(log, "next")) == "next"


async def test_close_cancels_running_and_waiting_work_and_refuses_more():
    chat, log, gate = queues(), [], asyncio.Event()
    running = await start(chat, "group:1", job(log, "running", gate))
    waiting = await start(chat, "group:1", job(log, "waiting"))
    unfilled = chat.reserve("group:1")  # its message never got its work
    await settle()
    await asyncio.wait_for(chat.close(), 1)
    for task in (running, waiting):
        with pytest.raises(QueueClosedError):
            await task
    assert unfilled.finished.is_set()
    assert log == ["running start"]
    with pytest.raises(QueueClosedError):
        await chat.submit("group:1", job(log, "late"))
