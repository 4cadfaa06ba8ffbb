"""``SharedCap``: the concurrency cap per API key, shared through Redis by every bot process
that uses the key (``GLM_REDIS_URL``).

Each call in flight holds a lease: a member of its key's sorted set in Redis, scored by when it
expires (Redis's own clock, so machines may disagree). Taking one is one script: drop expired
leases, count, add below the cap. The process renews its leases every few seconds, so those of
a process that died free themselves within ``LEASE_SECONDS``. A caller that finds the cap
reached waits until a place is given back anywhere (Redis tells every process, which wakes its
longest waiting caller) or, at the latest, ``POLL_SECONDS``, then tries again.

Redis is a help, not a condition: when it cannot be reached, calls go on under the process's
own cap (``Slots``) with one warning line, and a probe reconnects with one info line.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import redis.asyncio as redis
from nonebot.log import logger

LEASE_SECONDS = 15.0  # a lease not renewed for this long is dropped
RENEW_SECONDS = 5.0
POLL_SECONDS = 0.2  # at most between two tries while the cap is reached
RETRY_SECONDS = 2.0  # between two tries to reach Redis again
REDIS_TIMEOUT = 1.0  # seconds a Redis command may take before Redis counts as gone

# KEYS[1]: the key's lease set; ARGV: cap, lease id, lease milliseconds. 1 if taken, else 0.
_TAKE = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
    return 1
end
return 0
"""

# KEYS: lease sets; ARGV[1]: lease milliseconds, then one lease id per key. Renews those held.
_RENEW = """
local clock = redis.call('TIME')
local until_ = clock[1] * 1000 + math.floor(clock[2] / 1000) + tonumber(ARGV[1])
for index, key in ipairs(KEYS) do
    redis.call('ZADD', key, 'XX', until_, ARGV[index + 1])
    redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""

_FAILURES = (redis.RedisError, OSError, asyncio.TimeoutError)


def redis_place(url: str) -> str:
    """Where ``url`` points, without its password: for log lines."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data


class SharedCap:
    """At most ``limit`` calls in flight per key, across every process sharing ``url``."""

    def __init__(self, url: str, limit: int, *, prefix: str = "glm-chat") -> None:
        self.limit = limit
        self.place = redis_place(url)
        self._prefix = prefix
        self._redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._take = self._redis.register_script(_TAKE)
        self._renew = self._redis.register_script(_RENEW)
        self._held: dict[str, str] = {}  # lease id: its key's set
        # Per key's lease set: the callers waiting for one of its places, longest first.
        self._waiting: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._freed = f"{prefix}:freed"  # the channel a process announces a freed place on
        self.online = True
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Check Redis now (a warning if it is gone: the bot starts all the same) and keep
        the leases of this process renewed."""
        try:
            await self._redis.ping()
            logger.info(f"glm-chat: the concurrency cap is shared through {self.place}")
        except _FAILURES as error:
            self._lost(error)
        self._spawn(self._keep_renewing())
        self._spawn(self._hear_freed())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(*_FAILURES):
            await self._redis.aclose()

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[None]:
        """Hold one of ``key``'s ``limit`` places for the block (none while Redis is gone)."""
        lease = await self.acquire(key)
        try:
            yield
        finally:
            await self.release(lease)

    async def acquire(self, key: str) -> str | None:
        """Wait for a place under ``key``'s cap: the lease, or None while Redis is gone."""
        zset = f"{self._prefix}:inflight:{key}"
        lease = uuid.uuid4().hex
        while self.online:
            try:
                taken = await self._take(
                    keys=[zset], args=[self.limit, lease, int(LEASE_SECONDS * 1000)]
                )
            except _FAILURES as error:
                self._lost(error)
                break
            if taken:
                self._held[lease] = zset
                return lease
            await self._wait_for_a_place(zset)
        return None

    async def _wait_for_a_place(self, zset: str) -> None:
        turn = asyncio.get_running_loop().create_future()
        waiting = self._waiting[zset]
        waiting.append(turn)
        try:
            await asyncio.wait_for(turn, POLL_SECONDS * (1 + random.random()))
        except asyncio.TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                waiting.remove(turn)
            if not waiting:
                self._waiting.pop(zset, None)

    def _wake(self, zset: str | None = None) -> None:
        """Wake the longest waiting caller for ``zset`` (None: every caller)."""
        for key, waiting in list(self._waiting.items()):
            if zset is not None and key != zset:
                continue
            while waiting:
                turn = waiting.popleft()
                if not turn.done():
                    turn.set_result(None)
                    if zset is not None:
                        return

    async def _hear_freed(self) -> None:
        """Wake one waiting caller whenever any process gives a place back."""
        while True:
            if not self.online:
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                async with self._redis.pubsub() as channel:
                    await channel.subscribe(self._freed)
                    while self.online:
                        message = await channel.get_message(
                            ignore_subscribe_messages=True, timeout=RETRY_SECONDS
                        )
                        if message is not None:
                            self._wake(_text(message["data"]))
            except _FAILURES as error:
                self._lost(error)

    async def release(self, lease: str | None) -> None:
        zset = self._held.pop(lease, None) if lease is not None else None
        if zset is None or not self.online:
            return  # nothing held, or Redis is gone (the lease will expire)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                await pipe.zrem(zset, lease).publish(self._freed, zset).execute()
        except _FAILURES as error:
            self._lost(error)

    # --- losing Redis and finding it again ----------------------------------------------------
    def _lost(self, error: BaseException) -> None:
        if not self.online:
            return
        self.online = False
        self._held.clear()
        self._wake()  # nobody waits for a place that Redis can no longer give
        logger.warning(
            f"glm-chat: Redis at {self.place} cannot be reached ({type(error).__name__});"
            " each process keeps GLM_MAX_CONCURRENCY on its own until it is back"
        )
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self._redis.ping()
            except _FAILURES:
                continue
            self.online = True
            logger.info(f"glm-chat: Redis at {self.place} is back; the cap is shared again")
            return

    async def _keep_renewing(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            held = dict(self._held)
            if not held or not self.online:
                continue
            try:
                await self._renew(keys=list(held.values()), args=[int(LEASE_SECONDS * 1000), *held])
            except _FAILURES as error:
                self._lost(error)

    def _spawn(self, job: object) -> None:
        task = asyncio.get_running_loop().create_task(job, name="glm-chat shared cap")  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
