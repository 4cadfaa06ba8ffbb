"""``SharedCap``: the concurrency cap per API key, shared through Redis by every bot process
that uses the key (``GLM_REDIS_URL``).

Each call in flight holds a lease: a member of its key's sorted set in Redis, scored by when it
expires (Redis's own clock, so machines may disagree). Taking one is one script: drop expired
leases, count, add below the cap. The process renews its leases every few seconds, so those of
a process that died free themselves within ``LEASE_SECONDS``. A caller that finds the cap
reached waits until a place is given back anywhere (Redis tells every process, which wakes its
longest waiting caller) or, at the latest, ``POLL_SECONDS``, then tries again.

While Redis cannot be reached (see ``RedisLink``), calls go on under the process's own cap
(``Slots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable

from .link import FAILURES, PREFIX, RedisLink

LEASE_SECONDS = 15.0  # a lease not renewed for this long is dropped
RENEW_SECONDS = 5.0
POLL_SECONDS = 0.2  # at most between two tries while the cap is reached

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

# KEYS[1]: the processes present, then lease sets; ARGV[1]: lease milliseconds, ARGV[2]: this
# process, then one lease id per lease set. Renews this process and its leases; returns how
# many processes are present.
_RENEW = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local until_ = now + tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], until_, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
for index = 2, #KEYS do
    redis.call('ZADD', KEYS[index], 'XX', until_, ARGV[index + 1])
    redis.call('PEXPIRE', KEYS[index], tonumber(ARGV[1]))
end
return redis.call('ZCARD', KEYS[1])
"""


class SharedCap:
    """At most ``limit`` calls in flight per key, across every process sharing ``url``."""

    def __init__(self, link: RedisLink, limit: int) -> None:
        self.link = link
        self.limit = limit
        self._take = link.redis.register_script(_TAKE)
        self._renew = link.redis.register_script(_RENEW)
        self._held: dict[str, str] = {}  # lease id: its key's set
        # Per key's lease set: the callers waiting for one of its places, longest first.
        self._waiting: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._freed = f"{PREFIX}:freed"  # the channel a process announces a freed place on
        self._me = uuid.uuid4().hex
        self.processes = 1  # sharing the key, as last seen in Redis
        # Told the cap this process keeps alone: its share while Redis is gone, else ``limit``.
        self.on_alone: Callable[[int], None] | None = None
        link.when_lost(self._forget)
        link.when_back(self._together)

    def start(self) -> None:
        """Keep this process's leases renewed, and hear of places freed elsewhere."""
        self.link.spawn(self._keep_renewing())
        self.link.listen(self._freed, self._wake)

    @property
    def online(self) -> bool:
        return self.link.online

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
        zset = f"{PREFIX}:inflight:{key}"
        lease = uuid.uuid4().hex
        while self.online:
            try:
                taken = await self._take(
                    keys=[zset], args=[self.limit, lease, int(LEASE_SECONDS * 1000)]
                )
            except FAILURES as error:
                self.link.lost(error)
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

    async def release(self, lease: str | None) -> None:
        zset = self._held.pop(lease, None) if lease is not None else None
        if zset is None or not self.online:
            return  # nothing held, or Redis is gone (the lease will expire)
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                await pipe.zrem(zset, lease).publish(self._freed, zset).execute()
        except FAILURES as error:
            self.link.lost(error)

    @property
    def share(self) -> int:
        """This process's part of the limit while Redis is gone: the processes last seen
        together then stay within it (at least one call each)."""
        return max(1, self.limit // max(1, self.processes))

    def _forget(self) -> None:
        """Redis is gone: the leases will expire there; nobody waits for a place it gives, and
        the process keeps to its share."""
        self._held.clear()
        self._wake()
        if self.on_alone is not None:
            self.on_alone(self.share)

    def _together(self) -> None:
        if self.on_alone is not None:
            self.on_alone(self.limit)

    async def _keep_renewing(self) -> None:
        while not self.link.closed:
            if self.online:
                held = dict(self._held)
                try:
                    self.processes = int(
                        await self._renew(
                            keys=[f"{PREFIX}:processes", *held.values()],
                            args=[int(LEASE_SECONDS * 1000), self._me, *held],
                        )
                    )
                except FAILURES as error:
                    self.link.lost(error)
            await asyncio.sleep(RENEW_SECONDS)
