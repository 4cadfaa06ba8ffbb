"""What the store keeps of a group's background, its marks and its summaries (real SQLite and
PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.nonebot_plugin_glm_chat.memory.models import Heard, Speaker, Summary, Turn
from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore
from tests.support.stores import StoreAt

ALICE, BOB = Speaker("11", "Alice"), Speaker("12", "Bob")
NOW = time.time()


def heard(seq: int, text: str, speaker: Speaker = ALICE, *, at: float = NOW) -> Heard:
    return Heard(seq, speaker, text, f"m{seq}", at)


@pytest.fixture
async def store(store_at: StoreAt) -> AsyncIterator[ContextStore]:
    store = await store_at.open()
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_db: Path) -> AsyncIterator[ContextStore]:
    store = await ContextStore.open(tmp_db)
    yield store
    await store.close()


async def test_each_group_keeps_only_its_newest_messages(store):
    log = store.background
    await log.add([("group:1", heard(i, f"一{i}")) for i in range(1, 8)], keep=3)
    await log.add([("group:2", heard(10, "二")), ("group:1", heard(11, "一11"))], keep=3)
    kept = await log.since("group:1", "group:1", 100, keep=20, oldest_at=0)
    assert [h.text for h in kept] == ["一6", "一7", "一11"]
    assert [h.text for h in await log.since("group:2", "group:2", 100, keep=20, oldest_at=0)] == [
        "二"
    ]


async def test_a_question_carries_what_came_after_its_conversations_mark_and_before_it(store):
    log = store.background
    await log.add([("group:1", heard(i, f"m{i}")) for i in (1, 2, 3, 4)], keep=20)
    assert [h.seq for h in await log.since("group:1", "group:1", 4, keep=20, oldest_at=0)] == [
        1,
        2,
        3,
    ]
    # The answered turn moves the mark in the same statement.
    await store.append_turn("group:1", Turn("q", "a", ALICE, "ctx"), heard=4)
    assert [h.seq for h in await log.since("group:1", "group:1", 9, keep=20, oldest_at=0)] == [4]
    # Another conversation of the same group (a member's own) has its own mark.
    personal = await log.since("group:1", "group:1:11", 9, keep=2, oldest_at=0)
    assert [h.seq for h in personal] == [3, 4]


async def test_old_messages_are_neither_given_nor_kept(store):
    log = store.background
    await log.add([("group:1", heard(1, "旧", at=NOW - 3600)), ("group:1", heard(2, "新"))], 20)
    assert [h.text for h in await log.since("group:1", "group:1", 9, keep=20, oldest_at=NOW - 60)]
    assert await log.count("group:1", NOW - 60) == 1
    assert await log.sweep(NOW - 60) == 1
    assert await log.count("group:1", 0) == 1


async def test_a_reset_marks_everything_before_it_as_carried(store):
    log = store.background
    await log.add([("group:1", heard(i, "x")) for i in (1, 2, 3)], keep=20)
    await store.append_turn("group:1:11", Turn("q", "a"), scope="group:1", heard=1)
    await log.mark("group:1", 3, with_members=True)
    assert [h.seq for h in await log.since("group:1", "group:1", 9, keep=20, oldest_at=0)] == [3]
    assert [h.seq for h in await log.since("group:1", "group:1:11", 9, keep=20, oldest_at=0)] == [3]


async def test_a_quoted_message_is_found_by_its_qq_id(store):
    await store.background.add([("group:1", heard(5, "被引用的话", BOB))], keep=20)
    found = await store.background.find("group:1", "m5")
    assert found is not None and found.speaker == BOB and found.text == "被引用的话"
    assert await store.background.find("group:2", "m5") is None


def file_bytes(db: Path) -> bytes:
    return b"".join(
        path.read_bytes() for path in db.parent.iterdir() if path.name.startswith(db.name)
    )


async def test_forgetting_leaves_no_trace_in_the_files(sqlite_store, tmp_db):
    store = sqlite_store
    secret = "我们悄悄说的话"
    await store.background.add([("group:1", heard(1, secret))], keep=20)
    context = f"【群里最近的消息（没有@你）】\nAlice(11): {secret}"
    await store.append_turn("group:1", Turn("问", "答", ALICE, context), heard=2)
    await store.background.add([("group:2", heard(3, "别的群"))], keep=20)
    assert secret.encode() in file_bytes(tmp_db)

    assert await store.background.forget("group:1") == 1
    assert secret.encode() not in file_bytes(tmp_db)
    assert (await store.recent("group:1", 5))[0] == Turn("问", "答", ALICE)  # the turn stays
    assert await store.background.count("group:2", 0) == 1


async def test_a_summary_is_kept_only_while_the_conversation_is_as_it_was_summarised(store):
    for index in range(3):
        await store.append_turn("group:1", Turn(f"q{index}", "a", ALICE))
    [first, second, _] = await store.numbered("group:1", 3)
    one = Summary("Alice 养猫", first.seq, first.created_at, 1)
    assert await store.save_summary("group:1", one, None)
    # A second fold written from a stale summary (another fold won meanwhile) is refused.
    stale = Summary("旧", second.seq, second.created_at, 2)
    assert not await store.save_summary("group:1", stale, None)
    two = Summary("Alice 养猫，叫团子", second.seq, second.created_at, 2)
    assert await store.save_summary("group:1", two, one)
    kept = await store.summary("group:1")
    assert kept is not None and (kept.text, kept.upto, kept.turns) == (two.text, 2, 2)

    # A reset forgets it, and a fold that was under way when it happened is not stored.
    assert await store.reset("group:1") == 3
    assert await store.summary("group:1") is None
    assert not await store.save_summary("group:1", two, None)


async def test_a_request_reads_the_summary_and_the_turns_after_it_at_once(store):
    assert await store.context("group:1", 5) == (None, [])
    for index in range(4):
        await store.append_turn("group:1", Turn(f"q{index}", "a", ALICE))
    await store.append_turn("group:2", Turn("other", "chat"))
    assert await store.context("group:1", 3) == (
        None,
        [Turn(f"q{i}", "a", ALICE) for i in (1, 2, 3)],
    )

    [_, second, _, last] = await store.numbered("group:1", 4)
    assert await store.save_summary(
        "group:1", Summary("养猫", second.seq, second.created_at, 2), None
    )
    summary = await store.summary("group:1")
    assert summary is not None
    assert await store.context("group:1", 5) == (
        summary,
        [Turn("q2", "a", ALICE), Turn("q3", "a", ALICE)],
    )
    assert await store.context("group:1", 1) == (summary, [Turn("q3", "a", ALICE)])
    assert await store.context("group:1", 0) == (summary, [])

    everything = Summary("养猫，叫团子", last.seq, last.created_at, 4)
    assert await store.save_summary("group:1", everything, summary)
    assert await store.context("group:1", 5) == (await store.summary("group:1"), [])
    assert await store.context("group:2", 5) == (None, [Turn("other", "chat")])


async def test_turns_after_the_summary_are_numbered_oldest_first(store):
    for index in range(5):
        await store.append_turn("private:1", Turn(f"q{index}", "a"))
    oldest = await store.numbered("private:1", 2, 1, oldest=True)
    newest = await store.numbered("private:1", 2, 1)
    assert [(n.seq, n.turn.question) for n in oldest] == [(2, "q1"), (3, "q2")]
    assert [(n.seq, n.turn.question) for n in newest] == [(4, "q3"), (5, "q4")]
    assert await store.count("private:1", after=3) == 2
    assert [t.question for t in await store.recent("private:1", 9, after=3)] == ["q3", "q4"]


async def test_a_reset_of_everyone_covers_members_who_never_asked(store):
    log = store.background
    await log.add([("group:1", heard(i, "x")) for i in (1, 2, 3)], keep=20)
    await log.mark("group:1", 3, with_members=True)
    never_asked = await log.since("group:1", "group:1:99", 9, keep=20, oldest_at=0)
    assert [h.seq for h in never_asked] == [3]
    assert await log.last_seq() == 3
