"""``python -m ...memory.copy SQLITE_PATH POSTGRES_URL``: an SQLite database moved whole into an
empty PostgreSQL database (the real server the tests start), counters kept as they were."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from plugins.nonebot_plugin_glm_chat.glm.completion import Usage
from plugins.nonebot_plugin_glm_chat.memory.copy import CopyRefused, copy_database
from plugins.nonebot_plugin_glm_chat.memory.models import (
    ChatListing,
    ChatOptions,
    Heard,
    Speaker,
    Summary,
    Turn,
)
from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore, open_store
from tests.support.bot_process import ROOT
from tests.support.postgres import PASSWORD, PostgresServer

ALICE = Speaker("11", "Alice")
TODAY = date.today().isoformat()


async def fill(store: ContextStore) -> None:
    """A little of everything a running bot keeps."""
    await store.save_options("group:1", ChatOptions(persona="猫", personal=True, chime=5))
    await store.append_turn("group:1", Turn("问", "答", ALICE, "背景"), usage=Usage(10, 5, 15))
    await store.append_turn("group:1:11", Turn("我的", "好"), usage=Usage(2, 2, 4), scope="group:1")
    await store.append_turn("private:9", Turn("私聊", "嗯"), usage=Usage(1, 1, 2), heard=7)
    await store.count_usage("group:1", Usage(100, 0, 100))
    (last,) = await store.numbered("group:1", 1)
    assert await store.save_summary(
        "group:1", Summary("摘要", last.seq, last.created_at, 1, 0.0), None
    )
    await store.background.add([("group:1", Heard(5, ALICE, "闲聊", "m5", time.time()))], keep=20)
    await store.background.mark("group:1", 3, with_members=True)


async def snapshot(store: ContextStore) -> tuple:
    """What the bot and the console read back."""
    return (
        await store.recent("group:1", 10),
        await store.recent("group:1:11", 10),
        await store.options("group:1"),
        await store.list_chats(TODAY, TODAY, limit=10),
        await store.usage_since("2000-01-01"),
        await store.summary("group:1"),
        await store.background.since("group:1", "group:1:11", 100, keep=20, oldest_at=0),
        await store.background.last_seq(),
    )


async def chat(store: ContextStore, key: str) -> ChatListing:
    """The console's row for one chat."""
    return {c.chat: c for c in await store.list_chats(TODAY, TODAY, limit=10)}[key]


@pytest.fixture
async def source(tmp_db: Path) -> Path:
    store = await ContextStore.open(tmp_db)
    try:
        await fill(store)
    finally:
        await store.close()
    return tmp_db


async def test_everything_is_copied_once_and_counting_goes_on(source, postgres_server):
    url = await postgres_server.database()
    lines: list[str] = []
    copied = await copy_database(source, url, lines.append)
    assert copied["turns"] == 3 and copied["background"] == 1
    assert lines[-1] == (
        f"copied {sum(copied.values())} rows from {source} to {url.replace(PASSWORD, '***')}"
    )

    sqlite, postgres = await ContextStore.open(source), await open_store(source, url)
    try:
        assert await snapshot(postgres) == await snapshot(sqlite)
        group = await chat(postgres, "group:1")
        assert (group.turns, group.tokens_today) == (2, 119)
        # The triggers count again once the copy is done.
        await postgres.append_turn("group:1", Turn("又问", "又答"), usage=Usage(1, 0, 1))
        group = await chat(postgres, "group:1")
        assert (group.turns, group.tokens_today) == (3, 120)
    finally:
        await sqlite.close()
        await postgres.close()


async def test_a_target_holding_rows_is_refused_and_left_as_it_was(source, postgres_server):
    url = await postgres_server.database()
    store = await open_store(source, url)
    await store.append_turn("group:7", Turn("已有", "数据"))
    await store.close()

    with pytest.raises(CopyRefused) as error:
        await copy_database(source, url, lambda line: None)
    assert "is not empty (turns, usage_daily, chats hold rows)" in str(error.value)
    assert PASSWORD not in str(error.value)
    store = await open_store(source, url)
    try:
        assert await store.count("group:1") == 0 and await store.count("group:7") == 1
    finally:
        await store.close()


def run_copy(module: str, *args: str, pythonpath: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_command_prints_what_it_copied_and_refuses_a_second_time(
    source, postgres_server: PostgresServer
):
    url = await postgres_server.database()
    # The plugin as installed (nonebot_plugin_glm_chat) and as the checkout has it.
    done = run_copy(
        "nonebot_plugin_glm_chat.memory.copy", str(source), url, pythonpath=ROOT / "plugins"
    )
    assert done.returncode == 0, done.stderr
    assert "turns: 3 rows" in done.stdout and "chats: 2 rows" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr

    again = run_copy("plugins.nonebot_plugin_glm_chat.memory.copy", str(source), url)
    assert again.returncode == 1
    assert again.stderr.startswith("copy refused: postgresql://glm:***@127.0.0.1:")
    assert "Traceback" not in again.stderr and PASSWORD not in again.stderr

    missing = run_copy("plugins.nonebot_plugin_glm_chat.memory.copy", str(source) + ".nope", url)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"copy refused: {source}.nope is not a file",
    )
