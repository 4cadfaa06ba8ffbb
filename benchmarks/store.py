"""Store: reading a conversation's context and writing a turn, with 1k and with 1M turns stored
(target: 1M no more than 1.5 x the time of 1k).

Each operation is what a message costs the store: ``recent(conversation, 20)`` then
``append_turn``. The databases are filled through sqlite3 directly (100 turns per conversation),
then measured through ContextStore. ``--backend postgres`` copies each filled file into a fresh
database on a throwaway PostgreSQL server (``memory.copy``, timed) and measures there.

    python -m benchmarks.store [--ops 2000] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time
from pathlib import Path

import nonebot

from benchmarks.common import machine, summary, workdir
from tests.support.postgres import PostgresServer

TURNS_PER_CONVERSATION = 100
QUESTION = "这是一个不长不短的问题，用来填满数据库里的一轮对话。" * 2
ANSWER = "这是一个回答，长度和真实的回答差不多，包含一些标点和数字 123。" * 4


def fill(path: Path, turns: int) -> None:
    """Create the schema through the store, then insert ``turns`` turns quickly."""
    from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore

    async def create() -> None:
        store = await ContextStore.open(path)
        await store.close()

    asyncio.run(create())
    conversations = max(1, turns // TURNS_PER_CONVERSATION)
    # Conversations interleave, as when many groups talk at once.
    rows = (
        (
            f"group:{i % conversations}",
            i // conversations + 1,
            str(i % 997),
            f"member{i % 997}",
            QUESTION,
            ANSWER,
            "glm-4-flash",
            120,
            80,
            1.7e9 + i,
        )
        for i in range(turns)
    )
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " model, prompt_tokens, completion_tokens, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def measure(path: Path, ops: int, conversations: int, url: str | None) -> list[float]:
    from plugins.nonebot_plugin_glm_chat.memory.models import Speaker, Turn
    from plugins.nonebot_plugin_glm_chat.memory.store import open_store

    store = await open_store(path, url)
    speaker = Speaker("42", "member42")
    timings: list[float] = []
    try:
        for op in range(ops):
            conversation = f"group:{(op * 7919) % conversations}"
            start = time.perf_counter()
            await store.recent(conversation, 20)
            await store.append_turn(conversation, Turn(QUESTION, ANSWER, speaker))
            timings.append(time.perf_counter() - start)
    finally:
        await store.close()
    return timings


def copied(path: Path, server: PostgresServer | None) -> str | None:
    """``path`` copied into a fresh PostgreSQL database (its URL), or None for SQLite."""
    if server is None:
        return None
    from plugins.nonebot_plugin_glm_chat.memory.copy import copy_database

    url = asyncio.run(server.database())
    started = time.perf_counter()
    rows = asyncio.run(copy_database(path, url, lambda line: None))
    print(f"  copied {sum(rows.values()):,} rows in {time.perf_counter() - started:.1f}s")
    return url


def main(ops: int, backend: str) -> None:
    nonebot.init(_env_file=("benchmarks/echo_bot/.env.echo",))  # the plugin reads its config
    results: dict[int, list[float]] = {}
    server = PostgresServer().start() if backend == "postgres" else None
    try:
        with workdir() as folder:
            for turns in (1_000, 1_000_000):
                path = folder / f"store-{turns}.db"
                started = time.perf_counter()
                fill(path, turns)
                filled = time.perf_counter() - started
                url = copied(path, server)
                conversations = max(1, turns // TURNS_PER_CONVERSATION)
                asyncio.run(measure(path, 200, conversations, url))  # warm the caches
                results[turns] = asyncio.run(measure(path, ops, conversations, url))
                size = path.stat().st_size / 2**20
                print(
                    f"  {turns:>9,} turns ({size:.0f} MiB as SQLite, filled in {filled:.1f}s): "
                    f"read + write {summary(results[turns], ' ms', 1000)}"
                )
    finally:
        if server is not None:
            server.stop()
    ratio = statistics.median(results[1_000_000]) / statistics.median(results[1_000])
    print(f"store on {backend}: {ops} reads of 20 turns + writes of one ({machine()})")
    print(f"  ratio 1M / 1k  {ratio:.2f} (medians; target <= 1.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    main(args.ops, args.backend)
