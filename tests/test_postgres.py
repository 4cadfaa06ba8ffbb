"""What only the PostgreSQL backend has: its schema version, several processes at once, the
bot's local day, and servers that cannot be used (on the real server the tests start)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from plugins.nonebot_plugin_glm_chat.glm.completion import Usage
from plugins.nonebot_plugin_glm_chat.memory.db import masked_url
from plugins.nonebot_plugin_glm_chat.memory.models import Turn
from plugins.nonebot_plugin_glm_chat.memory.postgres import positional
from plugins.nonebot_plugin_glm_chat.memory.schema_postgres import MIGRATIONS
from plugins.nonebot_plugin_glm_chat.memory.store import (
    SchemaTooNewError,
    StoreOpenError,
    open_store,
)
from tests.support.bot_process import free_port
from tests.support.postgres import PASSWORD, PostgresServer


@pytest.fixture
async def url(postgres_server: PostgresServer) -> str:
    return await postgres_server.database()


def test_named_parameters_are_numbered_once_each_in_order_of_use():
    sql = "SELECT :b, x::text, CAST(:a AS TEXT) || ':*' FROM t WHERE y = :b AND z = 'p:q'"
    assert positional(sql) == (
        "SELECT $1, x::text, CAST($2 AS TEXT) || ':*' FROM t WHERE y = $1 AND z = 'p:q'",
        ("b", "a"),
    )


def test_a_password_never_shows_in_a_masked_url():
    assert masked_url("postgresql://glm:s3cr%40t@db:5432/glm") == "postgresql://glm:***@db:5432/glm"
    assert masked_url("postgres://db/glm") == "postgres://db/glm"


async def test_the_schema_is_versioned_and_two_processes_starting_together_do_not_race(url):
    stores = await asyncio.gather(*(open_store(Path("unused"), url) for _ in range(4)))
    try:
        assert [await store.schema_version() for store in stores] == [len(MIGRATIONS)] * 4
        await stores[0].append_turn("group:1", Turn("q", "a"))
        assert await stores[3].count("group:1") == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_newer_schema_is_refused(url):
    await (await open_store(Path("unused"), url)).close()
    db = await asyncpg.connect(url)
    await db.execute("UPDATE schema_version SET version = version + 1")
    await db.close()
    with pytest.raises(SchemaTooNewError) as error:
        await open_store(Path("unused"), url)
    assert error.value.setting == "GLM_DB_URL"


async def test_two_processes_answering_one_chat_both_keep_their_turns(url):
    first = await open_store(Path("unused"), url)
    second = await open_store(Path("unused"), url)
    try:

        async def answer(store, name: str) -> None:  # one chat's turns in order, as its queue does
            for i in range(30):
                await store.append_turn("group:1", Turn(f"{name}{i}", "a"), usage=Usage(1, 1, 2))

        await asyncio.gather(answer(first, "p"), answer(second, "q"))
        assert await first.count("group:1") == 60
        (listed,) = await second.list_chats("2000-01-01", "2000-01-01", limit=5)
        assert listed.turns == 60
    finally:
        await first.close()
        await second.close()


async def test_members_are_found_by_key_range_whatever_the_databases_collation(url):
    # A language collation sorts ':' and ';' by other rules than bytes; the keys do not.
    store = await open_store(Path("unused"), url)
    try:
        for conversation in ("group:1", "group:1:7", "group:1:8", "group:10", "group:1;x"):
            await store.append_turn(conversation, Turn("q", "a"))
        assert await store.reset("group:1", with_members=True) == 3
        assert await store.count("group:10") == await store.count("group:1;x") == 1
    finally:
        await store.close()


async def test_a_turns_day_is_the_bots_local_day(url, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Shanghai")  # 16:30 UTC is half past midnight there
    late = datetime.fromisoformat("2026-03-01T16:30:00+00:00").timestamp()
    monkeypatch.setattr(time, "time", lambda: late)
    store = await open_store(Path("unused"), url)
    try:
        await store.append_turn("group:1", Turn("q", "a"), usage=Usage(3, 4, 7))
        assert await store.usage_since("2026-03-01") == [("group:1", "2026-03-02", 7)]
    finally:
        await store.close()


async def test_an_unreachable_server_is_one_line_without_the_password():
    url = f"postgresql://glm:{PASSWORD}@127.0.0.1:{free_port()}/glm"
    with pytest.raises(StoreOpenError) as error:
        await open_store(Path("unused"), url)
    message = str(error.value)
    assert message.startswith("cannot connect to postgresql://glm:***@127.0.0.1:")
    assert PASSWORD not in message and "\n" not in message
    assert error.value.setting == "GLM_DB_URL"


async def test_a_wrong_password_is_refused_without_showing_it(postgres_server: PostgresServer):
    wrong = "not-the-password"
    with pytest.raises(StoreOpenError) as error:
        await open_store(Path("unused"), postgres_server.url(password=wrong))
    assert "password authentication failed" in str(error.value)
    assert wrong not in str(error.value) and PASSWORD not in str(error.value)
