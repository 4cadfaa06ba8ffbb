"""Reading along (write-behind, order, forgetting), the remark gate, and the API slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from plugins.nonebot_plugin_glm_chat.chat.chime import ChimeGate
from plugins.nonebot_plugin_glm_chat.chat.reading import FLUSH_DELAY, ReadingAlong
from plugins.nonebot_plugin_glm_chat.glm.slots import Slots
from plugins.nonebot_plugin_glm_chat.memory.models import Heard, Speaker
from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore
from tests.support.stores import StoreAt

ALICE = Speaker("11", "Alice")


@pytest.fixture
async def store(store_at: StoreAt) -> AsyncIterator[ContextStore]:
    store = await store_at.open()
    yield store
    await store.close()


def said(reading: ReadingAlong, chat: str, text: str) -> int:
    seq = reading.arrive(chat)
    reading.hear(chat, Heard(seq, ALICE, text, "", time.time()))
    return seq


async def test_what_is_heard_is_written_shortly_and_read_by_the_next_question(store):
    reading = ReadingAlong(store.background, keep=20, minutes=60)
    await reading.start()
    try:
        said(reading, "group:1", "一")
        said(reading, "group:1", "二")
        await asyncio.sleep(FLUSH_DELAY * 3)  # written without anyone asking
        assert await store.background.count("group:1", 0) == 2
        said(reading, "group:1", "三")  # not written yet: the question flushes first
        until = reading.next_seq()
        said(reading, "group:1", "after the question")
        assert [h.text for h in await reading.since("group:1", "group:1", until)] == [
            "一",
            "二",
            "三",
        ]
    finally:
        await reading.close()


async def test_a_question_waits_for_a_message_that_arrived_before_it(store):
    reading = ReadingAlong(store.background, keep=20, minutes=60)
    earlier = reading.arrive("group:1")  # its chat's settings are still being read
    until = reading.next_seq()
    asking = asyncio.create_task(reading.since("group:1", "group:1", until))
    await asyncio.sleep(0.05)
    assert not asking.done()
    reading.hear("group:1", Heard(earlier, ALICE, "先到的", "", time.time()))
    assert [h.text for h in await asyncio.wait_for(asking, 5)] == ["先到的"]
    # A message of another chat does not hold this one up.
    reading.arrive("group:2")
    assert len(await asyncio.wait_for(reading.since("group:1", "-", reading.next_seq()), 1)) == 1
    # A message passed over settles too.
    skipped = reading.arrive("group:1")
    reading.pass_over(skipped)
    assert await reading.since("group:1", "group:1", reading.next_seq()) == [
        Heard(earlier, ALICE, "先到的", "", pytest.approx(time.time(), abs=5))
    ]
    await reading.close()


async def test_forgetting_drops_what_waits_and_what_was_written(store):
    reading = ReadingAlong(store.background, keep=20, minutes=60)
    said(reading, "group:1", "written")
    await reading.flush()
    said(reading, "group:1", "waiting")
    said(reading, "group:2", "other group")
    assert await reading.forget("group:1") == 1
    await reading.close()  # writes what still waits
    assert await store.background.count("group:1", 0) == 0
    assert await store.background.count("group:2", 0) == 1


async def test_nothing_is_kept_when_the_operator_keeps_no_background(store):
    reading = ReadingAlong(store.background, keep=0, minutes=60)
    said(reading, "group:1", "x")
    await reading.close()
    assert not reading.on
    assert await store.background.count("group:1", 0) == 0
    assert await reading.since("group:1", "group:1", reading.next_seq()) == []


def test_numbers_only_grow():
    reading = ReadingAlong(None, keep=1, minutes=1)  # type: ignore[arg-type]
    numbers = [reading.next_seq() for _ in range(1000)]
    assert numbers == sorted(set(numbers))
    assert abs(numbers[0] / 1e6 - time.time()) < 60  # microseconds since the epoch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_remark_comes_with_its_chance_and_at_most_once_per_gap():
    clock = Clock()
    always = ChimeGate(60, chance=lambda: 0.999, clock=clock)
    assert always.due("group:1", 100)
    assert not always.due("group:1", 100)  # within the gap
    assert always.due("group:2", 100)  # another group has its own gap
    clock.now += 60
    assert always.due("group:1", 100)
    clock.now += 59
    assert not always.due("group:1", 100)  # the gap starts again at each remark

    rolls = iter([0.04, 0.06])
    gate = ChimeGate(0, chance=lambda: next(rolls), clock=clock)
    assert gate.due("group:1", 5)  # 4 < 5
    assert not gate.due("group:1", 5)  # 6 >= 5
    assert not ChimeGate(0, chance=lambda: 0.0).due("group:1", 0)


def test_the_gate_forgets_groups_whose_gap_has_passed():
    clock = Clock()
    gate = ChimeGate(10, chance=lambda: 0.0, clock=clock)
    for group in range(300):
        assert gate.due(f"group:{group}", 1)
        clock.now += 1
    assert len(gate._last) <= 256


async def test_answers_take_free_slots_before_work_that_can_wait():
    slots = Slots(2)
    order: list[str] = []
    release = asyncio.Event()

    async def call(name: str, can_wait: bool) -> None:
        async with slots.take(can_wait=can_wait):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(call("answer 1", False))
    await asyncio.sleep(0)
    summary = asyncio.create_task(call("summary", True))  # one slot is free: kept for answers
    await asyncio.sleep(0.01)
    assert order == ["answer 1"]
    second = asyncio.create_task(call("answer 2", False))
    await asyncio.sleep(0.01)
    assert order == ["answer 1", "answer 2"]
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second, summary), 5)
    assert order[-1] == "summary" and slots.busy == 0


async def test_a_cancelled_wait_gives_no_slot_away():
    slots = Slots(1)
    hold = asyncio.Event()

    async def holder() -> None:
        async with slots.take():
            await hold.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(holder())
    patient = asyncio.create_task(slots.take(can_wait=True).__aenter__())
    await asyncio.sleep(0.01)
    waiting.cancel()
    patient.cancel()
    hold.set()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.gather(waiting, patient, return_exceptions=True)
    assert slots.busy == 0
    async with slots.take(can_wait=True):  # a single slot is for anyone once it is free
        assert slots.busy == 1


def test_the_same_message_received_by_two_accounts_is_heard_once():
    reading = ReadingAlong(None, keep=1, minutes=1)  # type: ignore[arg-type]
    key = ("group:1", 7, 1700000000, "大家好")
    assert reading.first_time(key, "bot-a")
    assert not reading.first_time(key, "bot-b")  # the other account's copy
    assert reading.first_time(key, "bot-a")  # the member said it again
    assert reading.first_time(("group:1", 7, 1700000001, "大家好"), "bot-b")


class BrokenLog:
    """A background log whose writes fail (a full disk)."""

    async def add(self, rows, keep):
        raise OSError("disk full")

    async def since(self, *args, **kwargs):
        return []

    async def count(self, *args):
        return 0


async def test_a_background_that_cannot_be_written_does_not_stop_a_question():
    reading = ReadingAlong(BrokenLog(), keep=20, minutes=60)  # type: ignore[arg-type]
    said(reading, "group:1", "写不进去")
    assert await reading.since("group:1", "group:1", reading.next_seq()) == []
    assert await reading.count("group:1") == 0
    assert [heard.text for _, heard in reading._pending] == ["写不进去"]  # kept for later


async def test_numbers_go_on_from_those_kept_even_if_the_clock_went_back(store):
    future = time.time_ns() // 1000 + 10**9  # kept while the clock ran 17 minutes fast
    await store.background.add([("group:1", Heard(future, ALICE, "x", "", time.time()))], 20)
    reading = ReadingAlong(store.background, keep=20, minutes=60)
    await reading.start()
    assert reading.next_seq() > future
    await reading.close()


@pytest.mark.parametrize("ticks", [0, 1, 2, 3])
async def test_closing_just_as_a_message_is_heard_stops_and_keeps_it(store, ticks):
    """The bot's shutdown may come in the same instant as a member's message: it must neither
    hang (a cancellation lost in ``wait_for``, Python < 3.12) nor lose the message."""
    reading = ReadingAlong(store.background, keep=20, minutes=60)
    await reading.start()
    await asyncio.sleep(0)  # the writer waits for work
    said(reading, "group:1", "晚安")
    for _ in range(ticks):
        await asyncio.sleep(0)
    closing = asyncio.ensure_future(reading.close())
    done, _ = await asyncio.wait({closing}, timeout=3)
    assert done, "closing hung"
    assert await store.background.count("group:1", 0) == 1


async def test_a_start_holds_every_group_to_the_bound_again(store):
    """A ``kill -9`` between writing messages and pruning them, or a bound lowered while the
    bot was down, leaves more than the bound: the next start keeps only the newest."""
    now = time.time()
    rows = [
        (chat, Heard(seq, ALICE, f"{chat} {seq}", "", now))
        for chat in ("group:1", "group:2")
        for seq in range(1, 7)
    ]
    await store.background.add(rows, 10)
    reading = ReadingAlong(store.background, keep=3, minutes=60)
    await reading.start()
    try:
        for chat in ("group:1", "group:2"):
            kept = await reading.since(chat, chat, reading.next_seq())
            assert [heard.text for heard in kept] == [f"{chat} {seq}" for seq in (4, 5, 6)]
            assert await reading.count(chat) == 3
    finally:
        await reading.close()
