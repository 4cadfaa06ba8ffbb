"""What several bot processes share through a real Redis: the concurrency cap per key, a
member's cooldown and the once-a-day notices (each ``RedisLink`` here is one process's
connection)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nonebot.log import logger

from plugins.nonebot_plugin_glm_chat.chat.limits import Cooldown, OncePerDay, Verdict
from plugins.nonebot_plugin_glm_chat.glm.auth import KeyPool
from plugins.nonebot_plugin_glm_chat.glm.slots import Slots
from plugins.nonebot_plugin_glm_chat.shared import cap as cap_module
from plugins.nonebot_plugin_glm_chat.shared import link as link_module
from plugins.nonebot_plugin_glm_chat.shared.cap import SharedCap
from plugins.nonebot_plugin_glm_chat.shared.limits import SharedCooldown, SharedNotices
from plugins.nonebot_plugin_glm_chat.shared.link import RedisLink, redis_place
from plugins.nonebot_plugin_glm_chat.shared.rests import SharedRests
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


async def process_cap(url: str, limit: int) -> SharedCap:
    """One process's cap: its own connection to Redis."""
    link = RedisLink(url)
    await link.start()
    cap = SharedCap(link, limit)
    cap.start()
    return cap


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """What glm-chat logs at WARNING and INFO while the test runs."""
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(message.record["message"]), level="INFO")
    yield seen
    logger.remove(sink)


async def test_processes_sharing_a_key_never_exceed_its_cap_together(redis_server):
    caps = [await process_cap(redis_server.url, 3) for _ in range(2)]
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
            await cap.link.close()


async def test_the_places_of_a_process_that_died_free_themselves(redis_server, monkeypatch):
    monkeypatch.setattr(cap_module, "LEASE_SECONDS", 0.6)
    dying = await process_cap(redis_server.url, 2)
    living = await process_cap(redis_server.url, 2)
    try:
        assert await dying.acquire("key-a") and await dying.acquire("key-a")
        await dying.link.close()  # gone without giving its places back
        started = time.monotonic()
        lease = await asyncio.wait_for(living.acquire("key-a"), 5)
        waited = time.monotonic() - started
        assert lease is not None and 0.3 < waited < 3
    finally:
        await living.link.close()


async def test_losing_redis_falls_back_to_the_process_cap_and_comes_back(
    redis_server, monkeypatch, lines
):
    monkeypatch.setattr(link_module, "RETRY_SECONDS", 0.2)
    cap = await process_cap(redis_server.url, 1)
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
        await cap.link.close()


async def test_redis_gone_at_start_is_one_warning_not_a_failed_start(tmp_path, lines):
    cap = await process_cap(RedisServer(tmp_path).url, 5)  # nothing listens there
    try:
        assert not cap.online
        assert await asyncio.wait_for(cap.acquire("key-a"), 3) is None
        assert len([line for line in lines if "cannot be reached" in line]) == 1
    finally:
        await cap.link.close()


def test_a_redis_url_is_logged_without_its_password():
    assert redis_place("redis://:s3cret@cache.internal:6380/2") == "redis://cache.internal:6380/2"


async def test_a_members_cooldown_and_the_notices_hold_in_every_process(redis_server):
    links = [RedisLink(redis_server.url) for _ in range(2)]
    try:
        first, second = (SharedCooldown(link, Cooldown()) for link in links)
        assert (await first.ask("group:1:42", 30))[0] is Verdict.ASK
        verdict, left = await second.ask("group:1:42", 30)  # the other process knows
        assert verdict is Verdict.WARN and 28 < left <= 30
        assert (await first.ask("group:1:42", 30))[0] is Verdict.QUIET  # told once is enough
        assert (await second.ask("group:1:43", 30))[0] is Verdict.ASK  # others are free
        told = [SharedNotices(link, OncePerDay(), "quota") for link in links]
        assert await told[0].first_today("group:1")
        assert not await told[1].first_today("group:1")
        other_kind = SharedNotices(links[1], OncePerDay(), "private")
        assert await other_kind.first_today("group:1")
    finally:
        for link in links:
            await link.close()


async def test_cooldowns_go_on_in_the_process_when_redis_is_gone(redis_server, lines):
    link = RedisLink(redis_server.url)
    try:
        cooldown = SharedCooldown(link, Cooldown())
        redis_server.stop()
        assert (await cooldown.ask("group:1:42", 30))[0] is Verdict.ASK
        assert (await cooldown.ask("group:1:42", 30))[0] is Verdict.WARN  # kept locally
        assert len([line for line in lines if "cannot be reached" in line]) == 1
    finally:
        await link.close()


async def test_a_key_the_platform_refused_rests_in_every_process(redis_server):
    keys = ["keyone.0123456789abcdef", "keytwo.0123456789abcdef"]
    links = [RedisLink(redis_server.url) for _ in range(3)]
    pools = [KeyPool(keys, "jwt") for _ in range(3)]
    try:
        for link, pool in zip(links[:2], pools[:2], strict=True):
            await SharedRests(link, pool).start()
        seen = pools[0].pick()
        pools[0].rest(seen, 60, "1113")  # this process was told the key's quota is spent
        await eventually(lambda: pools[1].resting(), "the rest heard by the other process", 5)
        assert [(r.label, r.reason) for r in pools[1].resting()] == [(seen.label, "1113")]
        assert pools[1].pick().label != seen.label
        await SharedRests(links[2], pools[2]).start()  # a process started afterwards
        assert [r.label for r in pools[2].resting()] == [seen.label]
    finally:
        for link in links:
            await link.close()


async def test_without_redis_each_process_keeps_to_its_share_of_the_limit(
    redis_server, monkeypatch
):
    """Two processes on a limit of 5 keep 2 each while Redis is gone (4 in flight, not 10),
    and the whole limit again once it is back."""
    monkeypatch.setattr(cap_module, "RENEW_SECONDS", 0.1)
    monkeypatch.setattr(link_module, "RETRY_SECONDS", 0.1)
    caps = [await process_cap(redis_server.url, 5) for _ in range(2)]
    told: list[list[int]] = [[], []]
    for cap, sizes in zip(caps, told, strict=True):
        cap.on_alone = sizes.append
    try:
        await eventually(lambda: all(cap.processes == 2 for cap in caps), "both present", 5)
        redis_server.stop()
        for cap in caps:
            assert await asyncio.wait_for(cap.acquire("key-a"), 3) is None
        assert told == [[2], [2]]
        redis_server.start()
        await eventually(lambda: told == [[2, 5], [2, 5]], "the whole limit again", 5)
    finally:
        for cap in caps:
            await cap.link.close()


async def test_a_smaller_size_holds_new_calls_back_and_a_larger_one_lets_them_go():
    slots, in_flight, seen = Slots(5), 0, []
    slots.resize(2)

    async def call() -> None:
        nonlocal in_flight
        async with slots.take():
            in_flight += 1
            seen.append(in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1

    await asyncio.gather(*(call() for _ in range(8)))
    slots.resize(4)
    await asyncio.gather(*(call() for _ in range(8)))
    assert max(seen[:8]) == 2 and max(seen[8:]) == 4


async def test_a_closed_transport_under_the_listener_is_a_loss_it_survives(
    redis_server, monkeypatch, lines
):
    """uvloop reports a write on a transport it already closed as a RuntimeError; redis-py
    lets it through when it reconnects inside ``get_message``. The listener must take it as
    Redis lost, say so once, and hear messages again once Redis answers."""
    from redis.asyncio.client import PubSub

    monkeypatch.setattr(link_module, "RETRY_SECONDS", 0.2)
    get_message = PubSub.get_message
    broken = [RuntimeError("unable to perform operation on <TCPTransport closed=True>")]

    async def flaky(self, *args, **kwargs):
        if broken:
            raise broken.pop()
        return await get_message(self, *args, **kwargs)

    monkeypatch.setattr(PubSub, "get_message", flaky)
    link = RedisLink(redis_server.url)
    await link.start()
    heard: list[str] = []
    link.listen("glm-chat:test", heard.append)
    try:
        await eventually(lambda: not broken, "the listener met the broken transport", 3)
        await eventually(lambda: link.online, "Redis found again", 5)

        deadline = time.monotonic() + 5
        while "hello" not in heard:  # subscribed again once Redis answered: heard again
            assert time.monotonic() < deadline, "the listener never heard again"
            await link.redis.publish("glm-chat:test", "hello")
            await asyncio.sleep(0.2)
    finally:
        await link.close()
    assert sum("cannot be reached (RuntimeError)" in line for line in lines) == 1
