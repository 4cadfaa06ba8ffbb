"""``RedisLink``: the one Redis connection of a bot process (``GLM_REDIS_URL``), and whether
Redis can be reached now.

Redis is a help, not a condition: whoever finds it gone calls ``lost``, which logs one warning
line; a probe then tries again every ``RETRY_SECONDS`` and logs one info line when it is back.
Meanwhile every shared thing falls back to what the process keeps on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from nonebot.log import logger

RETRY_SECONDS = 2.0  # between two tries to reach Redis again
REDIS_TIMEOUT = 1.0  # seconds a Redis command may take before Redis counts as gone
PREFIX = "glm-chat"  # of every Redis key glm-chat writes
CLOSE_TRIES = 50  # cancellations of a task that will not end, 0.1 s apart

# What a Redis call raises when Redis is gone. RuntimeError too: redis-py reconnecting on a
# transport uvloop has already closed gets "unable to perform operation ... the handler is
# closed", and the pub/sub listener must treat that as a loss, not die of it.
FAILURES = (redis.RedisError, OSError, asyncio.TimeoutError, RuntimeError)


def redis_place(url: str) -> str:
    """Where ``url`` points, without its password: for log lines."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


class RedisLink:
    """The connection, its state (``online``), and the tasks that depend on it."""

    def __init__(self, url: str) -> None:
        self.place = redis_place(url)
        self.redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self.online = True
        self.closed = False
        self._on_lost: list[Callable[[], None]] = []
        self._on_back: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Check Redis now: a warning if it is gone (the bot starts all the same)."""
        try:
            await self.redis.ping()
            logger.info(f"glm-chat: processes share the concurrency cap through {self.place}")
        except FAILURES as error:
            self.lost(error)

    async def close(self) -> None:
        """Stop every task on the link, then the connection. A task is cancelled again until it
        ends: a cancellation that meets a Redis timeout can come out as that timeout."""
        self.closed = True
        running = set(self._tasks)
        for _ in range(CLOSE_TRIES):
            if not running:
                break
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=0.1)
        with contextlib.suppress(*FAILURES):
            await self.redis.aclose()

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time Redis is found gone."""
        self._on_lost.append(callback)

    def when_back(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time Redis is found again."""
        self._on_back.append(callback)

    def lost(self, error: BaseException) -> None:
        """Redis could not be reached: fall back, say so once, and look for it again."""
        if not self.online or self.closed:
            return
        self.online = False
        logger.warning(
            f"glm-chat: Redis at {self.place} cannot be reached ({type(error).__name__});"
            " until it is back, each process keeps its share of GLM_MAX_CONCURRENCY and its"
            " own cooldowns"
        )
        for callback in self._on_lost:
            callback()
        self.spawn(self._reconnect())

    async def _reconnect(self) -> None:
        while not self.closed:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.redis.ping()
            except FAILURES:
                continue
            self.online = True
            logger.info(f"glm-chat: Redis at {self.place} is back; limits are shared again")
            for callback in self._on_back:
                callback()
            return

    def listen(self, channel: str, hear: Callable[[str], None]) -> None:
        """Call ``hear(message)`` for each message published on ``channel``, subscribing again
        whenever Redis comes back."""
        self.spawn(self._listen(channel, hear))

    async def _listen(self, channel: str, hear: Callable[[str], None]) -> None:
        while not self.closed:
            if not self.online:
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                async with self.redis.pubsub() as subscription:
                    await subscription.subscribe(channel)
                    while self.online and not self.closed:
                        message = await subscription.get_message(
                            ignore_subscribe_messages=True, timeout=RETRY_SECONDS
                        )
                        if message is not None:
                            data = message["data"]
                            hear(data.decode() if isinstance(data, bytes) else str(data))
            except FAILURES as error:
                self.lost(error)

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` until the link closes."""
        task = asyncio.get_running_loop().create_task(job, name="glm-chat redis")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
