"""The concurrency cap per key shared through a real Redis by several processes (each
``SharedCap`` here has its own connection, as each bot process has)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nonebot.log import logger

from plugins.nonebot_plugin_glm_chat.glm import shared
from plugins.nonebot_plugin_glm_chat.glm.shared import SharedCap, redis_place
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """What glm-chat logs at WARNING and INFO while the test runs."""
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(message.record["message"]), level="INFO")
    yield seen
    logger.remove(sink)


async def test_processes_sharing_a_key_never_exceed_its_cap_together(redis_server):
    caps = [SharedCap(redis_server.url, 3) for _ in range(2)]
    for cap in caps:
        await cap.start()
    in_flight = peak = 0

    async def call(cap: SharedCap, key: str) -> None:
        nonlocal in_flight, peak
        async with cap.lease(key):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1

    try:
        await asyncio.gather(*(call(caps[index % 2], "key-a") for index in range(30)))
        assert peak == 3  # all three places used, never a fourth
        # Another key has places of its own.
        async with caps[0].lease("key-a"), caps[1].lease("key-b"):
            pass
    finally:
        for cap in caps:
            await cap.close()


async def test_the_places_of_a_process_that_died_free_themselves(redis_server, monkeypatch):
    monkeypatch.setattr(shared, "LEASE_SECONDS", 0.6)
    dying, living = SharedCap(redis_server.url, 2), SharedCap(redis_server.url, 2)
    await dying.start()
    await living.start()
    try:
        assert await dying.acquire("key-a") and await dying.acquire("key-a")
        await dying.close()  # gone without giving its places back
        started = time.monotonic()
        lease = await asyncio.wait_for(living.acquire("key-a"), 5)
        waited = time.monotonic() - started
        assert lease is not None and 0.3 < waited < 3
    finally:
        await living.close()


async def test_losing_redis_falls_back_to_the_process_cap_and_comes_back(
    redis_server, monkeypatch, lines
):
    monkeypatch.setattr(shared, "RETRY_SECONDS", 0.2)
    cap = SharedCap(redis_server.url, 1)
    await cap.start()
    try:
        held = await cap.acquire("key-a")
        assert held is not None
        redis_server.stop()
        # The cap is reached, but Redis is gone: the call goes on (the process's own cap
        # still holds), it does not wait for a place nobody can give back.
        assert await asyncio.wait_for(cap.acquire("key-a"), 3) is None
        assert await asyncio.wait_for(cap.acquire("key-a"), 3) is None
        await cap.release(held)
        lost = [line for line in lines if "cannot be reached" in line]
        assert len(lost) == 1 and "GLM_MAX_CONCURRENCY" in lost[0]
        redis_server.start()
        await eventually(lambda: cap.online, "Redis found again", 5)
        assert [line for line in lines if "is back" in line] != []
        assert await asyncio.wait_for(cap.acquire("key-a"), 3) is not None
    finally:
        await cap.close()


async def test_redis_gone_at_start_is_one_warning_not_a_failed_start(tmp_path, lines):
    cap = SharedCap(RedisServer(tmp_path).url, 5)  # nothing listens there
    await cap.start()
    try:
        assert not cap.online
        assert await asyncio.wait_for(cap.acquire("key-a"), 3) is None
        assert len([line for line in lines if "cannot be reached" in line]) == 1
    finally:
        await cap.close()


def test_a_redis_url_is_logged_without_its_password():
    assert redis_place("redis://:s3cret@cache.internal:6380/2") == "redis://cache.internal:6380/2"
