import inspect
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from plugins.nonebot_plugin_glm_chat.glm.completion import Usage
from plugins.nonebot_plugin_glm_chat.memory import background as background_module
from plugins.nonebot_plugin_glm_chat.memory import sqlite as sqlite_module
from plugins.nonebot_plugin_glm_chat.memory import store as store_module
from plugins.nonebot_plugin_glm_chat.memory.models import ChatOptions, Speaker, Turn
from plugins.nonebot_plugin_glm_chat.memory.schema import MIGRATIONS
from plugins.nonebot_plugin_glm_chat.memory.store import (
    ContextStore,
    SchemaTooNewError,
    StoreOpenError,
)
from tests.support.stores import StoreAt

ALICE = Speaker("1001", "Alice")


async def test_folder_is_created_and_turns_survive_a_reopen(store_at: StoreAt, tmp_db: Path):
    store = await store_at.open()
    await store.append_turn(
        "group:1", Turn("你好", "你好呀", ALICE), model="glm-4-flash-250414", usage=Usage(10, 5, 15)
    )
    await store.append_turn("group:1", Turn("再见", "拜拜", Speaker("1002", "Bob")))
    await store.close()
    assert tmp_db.parent.is_dir() or store_at.backend != "sqlite"

    store = await store_at.open()
    try:
        assert await store.recent("group:1", 10) == [
            Turn("你好", "你好呀", ALICE),
            Turn("再见", "拜拜", Speaker("1002", "Bob")),
        ]
        assert await store.count("group:1") == 2
    finally:
        await store.close()


async def test_recent_returns_the_newest_turns_oldest_first(store_at: StoreAt):
    store = await store_at.open()
    try:
        for i in range(5):
            await store.append_turn("private:7", Turn(f"q{i}", f"a{i}"))
        await store.append_turn("private:8", Turn("other", "chat"))
        assert [t.question for t in await store.recent("private:7", 3)] == ["q2", "q3", "q4"]
        assert await store.recent("private:7", 0) == []
        assert (await store.recent("private:8", 5))[0].speaker is None
    finally:
        await store.close()


async def test_reset_forgets_one_conversation_only(store_at: StoreAt):
    store = await store_at.open()
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


async def test_a_failed_write_leaves_nothing_behind(store_at: StoreAt):
    refused = {"sqlite": sqlite3.IntegrityError, "postgres": asyncpg.NotNullViolationError}
    store = await store_at.open()
    try:
        with pytest.raises(refused[store_at.backend]):
            await store.append_turn("group:1", Turn(None, "answer"))  # type: ignore[arg-type]
        assert await store.count("group:1") == 0
        await store.append_turn("group:1", Turn("q", "a"))  # the store still works
        assert await store.count("group:1") == 1
    finally:
        await store.close()


async def test_a_v1_database_is_migrated_and_its_usage_counted(tmp_db: Path, monkeypatch):
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS[:1])
    await (await ContextStore.open(tmp_db)).close()
    with sqlite3.connect(tmp_db) as db:  # a turn as version 1 wrote it
        db.execute(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " prompt_tokens, completion_tokens, created_at)"
            " VALUES ('group:1', 1, '1001', 'Alice', '旧的', '回答', 30, 12, strftime('%s'))"
        )

    monkeypatch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS)
    store = await ContextStore.open(tmp_db)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.recent("group:1", 5) == [Turn("旧的", "回答", ALICE)]
        (listed,) = await store.list_chats("2000-01-01", "2000-01-01", limit=10)
        assert (listed.chat, listed.turns) == ("group:1", 1)
        (row,) = await store.usage_since("2000-01-01")
        assert row[0] == "group:1" and row[2] == 42
        # New turns count towards their chat's usage, in the same statement.
        await store.append_turn("group:1:7", Turn("q", "a"), usage=Usage(5, 5, 10), scope="group:1")
        assert await store.tokens_on("group:1", row[1]) == 52
    finally:
        await store.close()


async def test_chat_options_are_saved(store_at: StoreAt):
    store = await store_at.open()
    try:
        assert await store.options("group:9") == ChatOptions()
        wanted = ChatOptions(persona="猫", model="glm-4-plus", personal=True, web_search=True)
        await store.save_options("group:9", wanted)
        assert await store.options("group:9") == wanted
    finally:
        await store.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Files are created group- and world-readable unless the store says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def test_the_database_and_its_side_files_are_private(tmp_db: Path, open_umask):
    store = await ContextStore.open(tmp_db)
    try:
        await store.append_turn("group:1", Turn("q", "a"))
        side_files = [tmp_db.with_name(tmp_db.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(path.exists() for path in side_files)
        assert [mode(path) for path in (tmp_db, *side_files)] == [0o600] * 3
    finally:
        await store.close()


async def test_an_existing_database_is_made_private_on_open(tmp_db: Path, open_umask):
    tmp_db.parent.mkdir(parents=True)
    sqlite3.connect(tmp_db).close()
    wal = tmp_db.with_name(tmp_db.name + "-wal")
    wal.touch()
    for path in (tmp_db, wal):
        path.chmod(0o644)
    store = await ContextStore.open(tmp_db)
    try:
        assert (mode(tmp_db), mode(wal)) == (0o600, 0o600)
    finally:
        await store.close()


async def test_a_path_that_cannot_hold_a_database_says_why(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    under_a_file = tmp_path / "a-file" / "glm.db"
    with pytest.raises(StoreOpenError) as error:
        await ContextStore.open(under_a_file)
    assert str(error.value) == (
        f"cannot create or open {under_a_file} (Not a directory: {under_a_file.parent})"
    )

    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("shopping list\n" * 1000)
    with pytest.raises(StoreOpenError) as error:
        await ContextStore.open(not_a_database)
    assert str(error.value) == f"cannot create or open {not_a_database} (file is not a database)"


def test_the_sql_uses_named_parameters_only():
    # sqlite3 warns about ?1 with a parameter sequence from Python 3.12 and refuses it from 3.14;
    # the PostgreSQL backend numbers the named ones itself.
    for module in (store_module, background_module):
        assert not re.search(r"\?\d|\$\d", inspect.getsource(module))


@pytest.mark.filterwarnings("error::DeprecationWarning")
async def test_every_query_runs_without_deprecation_warnings(store_at: StoreAt):
    store = await store_at.open()
    try:
        await store.append_turn("group:1", Turn("q", "a", ALICE), usage=Usage(1, 1, 2))
        await store.append_turn("group:1:1001", Turn("q", "a"), scope="group:1")
        assert len(await store.recent("group:1", 5)) == 1
        assert await store.count("group:1") == 1
        await store.save_options("group:1", ChatOptions(persona="猫"))
        assert (await store.options("group:1")).persona == "猫"
        (scope, day, tokens), *_ = await store.usage_since("2000-01-01", "group:1")
        assert await store.tokens_on(scope, day) == tokens == 2
        assert await store.reset("group:1", with_members=True) == 2
    finally:
        await store.close()


async def test_the_console_lists_chats_by_last_activity_with_their_tokens(store_at: StoreAt):
    store = await store_at.open()
    try:
        await store.append_turn("group:1", Turn("q", "a", ALICE), usage=Usage(10, 5, 15))
        await store.append_turn("private:9", Turn("q", "a"), usage=Usage(1, 1, 2))
        await store.append_turn(
            "group:1:7", Turn("mine", "a"), usage=Usage(3, 3, 6), scope="group:1"
        )
        await store.save_options("group:2", ChatOptions(persona="猫"))  # set, never talked
        today = date.today().isoformat()
        listed = await store.list_chats(today, today, limit=10)
        assert [(c.chat, c.turns, c.tokens_today) for c in listed] == [
            ("group:1", 2, 21),
            ("private:9", 1, 2),
            ("group:2", 0, 0),
        ]
        assert listed[2].options.persona == "猫"
        assert await store.count_chats() == 3
        assert [c.chat for c in await store.list_chats(today, today, limit=5, search="group")] == [
            "group:1",
            "group:2",
        ]
        assert [c.chat for c in await store.list_chats(today, today, limit=1, offset=1)] == [
            "private:9"
        ]

        turns = await store.chat_turns("group:1", 10)  # the member's own turn included
        assert [(t.conversation, t.turn.question) for t in turns] == [
            ("group:1:7", "mine"),
            ("group:1", "q"),
        ]
        await store.reset("group:1", with_members=True)
        assert (await store.list_chats(today, today, limit=1))[0].turns == 0
        # Usage stays: what was spent was spent.
        assert await store.tokens_by_day(today) == {today: 23}
        assert await store.top_chats(today, 1) == [("group:1", 21)]
        assert [u.chat for u in await store.daily_usage(today)] == ["group:1", "private:9"]
    finally:
        await store.close()
