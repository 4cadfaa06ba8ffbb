import sqlite3
from pathlib import Path

import pytest

from plugins.glm_chat.glm.completion import Usage
from plugins.glm_chat.memory.models import Speaker, Turn
from plugins.glm_chat.memory.store import MIGRATIONS, ContextStore, SchemaTooNewError

ALICE = Speaker("1001", "Alice")


async def test_folder_is_created_and_turns_survive_a_reopen(tmp_db: Path):
    store = await ContextStore.open(tmp_db)
    await store.append_turn(
        "group:1", Turn("你好", "你好呀", ALICE), model="glm-4-flash", usage=Usage(10, 5, 15)
    )
    await store.append_turn("group:1", Turn("再见", "拜拜", Speaker("1002", "Bob")))
    await store.close()
    assert tmp_db.parent.is_dir()

    store = await ContextStore.open(tmp_db)
    try:
        assert await store.recent("group:1", 10) == [
            Turn("你好", "你好呀", ALICE),
            Turn("再见", "拜拜", Speaker("1002", "Bob")),
        ]
        assert await store.count("group:1") == 2
    finally:
        await store.close()


async def test_recent_returns_the_newest_turns_oldest_first(tmp_db: Path):
    store = await ContextStore.open(tmp_db)
    try:
        for i in range(5):
            await store.append_turn("private:7", Turn(f"q{i}", f"a{i}"))
        await store.append_turn("private:8", Turn("other", "chat"))
        assert [t.question for t in await store.recent("private:7", 3)] == ["q2", "q3", "q4"]
        assert await store.recent("private:7", 0) == []
        assert (await store.recent("private:8", 5))[0].speaker is None
    finally:
        await store.close()


async def test_reset_forgets_one_conversation_only(tmp_db: Path):
    store = await ContextStore.open(tmp_db)
    try:
        await store.append_turn("group:1", Turn("a", "b", ALICE))
        await store.append_turn("group:2", Turn("c", "d", ALICE))
        assert await store.reset("group:1") == 1
        assert await store.recent("group:1", 5) == []
        assert await store.count("group:2") == 1
    finally:
        await store.close()


async def test_database_is_wal_with_a_schema_version_and_clustered_turns(tmp_db: Path):
    store = await ContextStore.open(tmp_db)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
    finally:
        await store.close()
    with sqlite3.connect(tmp_db) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM turns WHERE conversation = ? ORDER BY seq DESC"
            " LIMIT 5",
            ("group:1",),
        ).fetchall()
        # One range of the clustered primary key: no scan, no sort.
        assert "SEARCH turns USING PRIMARY KEY (conversation=?)" in str(plan)
        assert "TEMP B-TREE" not in str(plan)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_newer_schema_is_refused(tmp_db: Path):
    tmp_db.parent.mkdir(parents=True)
    with sqlite3.connect(tmp_db) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNewError):
        await ContextStore.open(tmp_db)


async def test_a_failed_write_leaves_nothing_behind(tmp_db: Path):
    store = await ContextStore.open(tmp_db)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            await store.append_turn("group:1", Turn(None, "answer"))  # type: ignore[arg-type]
        assert await store.count("group:1") == 0
        await store.append_turn("group:1", Turn("q", "a"))  # the store still works
        assert await store.count("group:1") == 1
    finally:
        await store.close()


async def test_a_v1_database_is_migrated_and_its_usage_counted(tmp_db: Path, monkeypatch):
    from plugins.glm_chat.memory import store as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    await (await ContextStore.open(tmp_db)).close()
    with sqlite3.connect(tmp_db) as db:  # a turn as version 1 wrote it
        db.execute(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " prompt_tokens, completion_tokens, created_at)"
            " VALUES ('group:1', 1, '1001', 'Alice', '旧的', '回答', 30, 12, strftime('%s'))"
        )

    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    store = await ContextStore.open(tmp_db)
    try:
        assert await store.schema_version() == 2
        assert await store.recent("group:1", 5) == [Turn("旧的", "回答", ALICE)]
        (row,) = await store.usage_since("2000-01-01")
        assert row[0] == "group:1" and row[2] == 42
        # New turns count towards their chat's usage, in the same statement.
        await store.append_turn("group:1:7", Turn("q", "a"), usage=Usage(5, 5, 10), scope="group:1")
        assert await store.tokens_on("group:1", row[1]) == 52
    finally:
        await store.close()


async def test_chat_options_are_saved(tmp_db: Path):
    from plugins.glm_chat.memory.models import ChatOptions

    store = await ContextStore.open(tmp_db)
    try:
        assert await store.options("group:9") == ChatOptions()
        wanted = ChatOptions(persona="猫", model="glm-4-plus", personal=True, web_search=True)
        await store.save_options("group:9", wanted)
        assert await store.options("group:9") == wanted
    finally:
        await store.close()
