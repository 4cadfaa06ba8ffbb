"""``ChatQueues`` driven directly: arrival order, places filled late, member lanes, failures,
shutdown. Slow work waits for a gate the test opens, so nothing depends on timing."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from plugins.nonebot_plugin_glm_chat.chat.queue import ChatQueues, QueueClosedError, Work


def queues(personal: frozenset[str] = frozenset()) -> ChatQueues:
    async def is_personal(chat: str) -> bool:
        return chat in personal

    return ChatQueues(is_personal)


class Jobs:
    """Work that notes when it starts and ends; ``gate(name)`` holds a job until opened."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.started: dict[str, asyncio.Event] = {}
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def job(self, name: str) -> Callable[[], Awaitable[str]]:
        started = self.started.setdefault(name, asyncio.Event())

        async def run() -> str:
            self.log.append(f"{name} start")
            started.set()
            if name in self.gates:
                await self.gates[name].wait()
            self.log.append(f"{name} end")
            return name

        return run


def submit(chat: ChatQueues, jobs: Jobs, name: str, member: str | None = None) -> asyncio.Task:
    """Take a place now (as a message does on arrival) and run ``name`` in it."""
    place = chat.reserve("group:1")
    chat.fill(place, Work(jobs.job(name), member))

    async def finished() -> None:
        await place.wait()

    return asyncio.create_task(finished())


async def test_work_runs_one_at_a_time_in_place_order_even_when_filled_out_of_order():
    chat, jobs = queues(), Jobs()
    first, second, third = (chat.reserve("group:1") for _ in range(3))
    chat.fill(third, Work(jobs.job("c")))
    chat.fill(second, Work(jobs.job("b")))
    chat.fill(first, Work(jobs.job("a")))
    await third.wait()
    assert jobs.log == ["a start", "a end", "b start", "b end", "c start", "c end"]


async def test_a_place_filled_with_nothing_lets_the_ones_behind_it_go():
    chat, jobs = queues(), Jobs()
    skipped, kept = chat.reserve("group:1"), chat.reserve("group:1")
    chat.fill(kept, Work(jobs.job("kept")))
    chat.fill(skipped, None)
    await kept.wait()
    assert jobs.log == ["kept start", "kept end"]


async def test_chats_do_not_wait_for_each_other():
    chat, jobs = queues(), Jobs()
    jobs.gate("slow")
    slow = asyncio.create_task(chat.submit("group:1", jobs.job("slow")))
    await jobs.started["slow"].wait()
    assert await chat.submit("group:2", jobs.job("other")) == "other"
    jobs.gate("slow").set()
    assert await slow == "slow"
    assert jobs.log == ["slow start", "other start", "other end", "slow end"]


async def test_members_have_lanes_and_chat_wide_work_waits_for_all_of_them():
    chat, jobs = queues(personal=frozenset({"group:1"})), Jobs()
    jobs.gate("a1")
    tasks = [
        submit(chat, jobs, "a1", "a"),
        submit(chat, jobs, "a2", "a"),
        submit(chat, jobs, "b1", "b"),
        submit(chat, jobs, "whole"),
        submit(chat, jobs, "b2", "b"),
    ]
    await tasks[2]  # Bob's answer does not wait for Alice's
    assert "a1 end" not in jobs.log
    jobs.gate("a1").set()
    await asyncio.gather(*tasks)
    after_bob = jobs.log[jobs.log.index("b1 end") + 1 :]
    # Alice's second waits for her first; the chat-wide work for both lanes; Bob's second
    # for the chat-wide work.
    assert after_bob == [
        "a1 end",
        "a2 start",
        "a2 end",
        "whole start",
        "whole end",
        "b2 start",
        "b2 end",
    ]


async def test_in_a_shared_chat_member_work_is_chat_wide():
    chat, jobs = queues(), Jobs()
    jobs.gate("a")
    first, second = submit(chat, jobs, "a", "a"), submit(chat, jobs, "b", "b")
    await jobs.started["a"].wait()
    jobs.gate("a").set()
    await asyncio.gather(first, second)
    assert jobs.log == ["a start", "a end", "b start", "b end"]


async def test_a_failure_reaches_its_waiter_and_the_queue_goes_on():
    chat, jobs = queues(), Jobs()

    async def broken() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await chat.submit("group:1", broken)
    assert await chat.submit("group:1", jobs.job("next")) == "next"


async def test_a_chat_whose_mode_cannot_be_read_is_served_as_shared():
    async def unreadable(chat: str) -> bool:
        raise OSError("database is locked")

    chat, jobs = ChatQueues(unreadable), Jobs()
    assert await chat.submit("group:1", jobs.job("a"), member="a") == "a"


async def test_close_finishes_every_place_running_waiting_in_a_lane_or_unfilled():
    chat, jobs = queues(personal=frozenset({"group:1"})), Jobs()
    for name in ("a1", "b1"):
        jobs.gate(name)
    waiters = [
        submit(chat, jobs, "a1", "a"),
        submit(chat, jobs, "a2", "a"),  # queued in Alice's lane
        submit(chat, jobs, "b1", "b"),
        submit(chat, jobs, "whole"),  # popped, waiting for the lanes
        submit(chat, jobs, "b2", "b"),  # behind the chat-wide work
    ]
    unfilled = chat.reserve("group:1")  # its message never got its work
    await jobs.started["a1"].wait()
    await jobs.started["b1"].wait()
    await asyncio.wait_for(chat.close(), 5)
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert unfilled.finished.is_set()
    assert jobs.log == ["a1 start", "b1 start"]
    with pytest.raises(QueueClosedError):
        await chat.submit("group:1", jobs.job("late"))
