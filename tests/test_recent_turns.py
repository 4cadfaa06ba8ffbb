"""The SQLite store's copy of recent turns and summaries never disagrees with the database."""

import random
from pathlib import Path

from plugins.nonebot_plugin_glm_chat.memory.models import Heard, Speaker, Summary, Turn
from plugins.nonebot_plugin_glm_chat.memory.recent import RecentTurns
from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore

ALICE = Speaker("1001", "Alice")
CONVERSATIONS = ("group:1", "group:1:1001", "group:2", "private:7")


async def test_what_is_held_matches_the_database_through_random_writes(tmp_db: Path) -> None:
    cached = await ContextStore.open(tmp_db)
    cached._recent = cached.background._recent = RecentTurns(3)  # evictions happen too
    direct = await ContextStore.open(tmp_db)  # a second connection, its copy never consulted
    direct._recent = None
    rng = random.Random(20261207)
    try:
        for step in range(600):
            conversation = rng.choice(CONVERSATIONS)
            action = rng.random()
            if action < 0.5:
                await cached.append_turn(conversation, Turn(f"问{step}", f"答{step}", ALICE))
            elif action < 0.6:
                turns = await direct.numbered(conversation, 3, oldest=True)
                if turns:
                    previous = await cached.summary(conversation)
                    upto = turns[-1]
                    summary = Summary(f"摘要{step}", upto.seq, upto.created_at, upto.seq)
                    await cached.save_summary(conversation, summary, previous)
            elif action < 0.65:
                await cached.reset(conversation, with_members=rng.random() < 0.5)
            elif action < 0.68:
                chat = ":".join(conversation.split(":")[:2])
                await cached.background.add([(chat, Heard(step, ALICE, "闲聊"))], keep=10)
                await cached.background.forget(chat)
            summary = await direct.summary(conversation)
            assert await cached.summary(conversation) == summary, step
            after = summary.upto if summary and rng.random() < 0.7 else rng.randrange(0, 5)
            limit = rng.choice((1, 3, 5, 20))
            expected = await direct.numbered(conversation, limit, after)
            assert await cached.numbered(conversation, limit, after) == expected, step
    finally:
        await cached.close()
        await direct.close()


async def test_a_question_reads_its_history_from_memory_once_it_has_been_read(
    tmp_db: Path, monkeypatch
) -> None:
    store = await ContextStore.open(tmp_db)
    reads: list[str] = []
    fetch = store.db.fetch

    async def counting(sql: str, params=None):
        reads.append(sql.split(" FROM ")[1].split()[0])
        return await fetch(sql, params)

    monkeypatch.setattr(store.db, "fetch", counting)
    try:
        for number in range(5):
            await store.summary("group:1")
            await store.recent("group:1", 20)
            await store.append_turn("group:1", Turn(f"问{number}", f"答{number}", ALICE))
        # The first question reads both; the second reads the turns again (the first turn of
        # a conversation cannot be numbered without asking); after that, nothing.
        assert reads == ["summaries", "turns", "turns"]
        assert [turn.question for turn in await store.recent("group:1", 20)] == [
            f"问{number}" for number in range(5)
        ]
        await store.reset("group:1")
        assert await store.recent("group:1", 20) == []
    finally:
        await store.close()
