"""Reading along: a group's messages that were not addressed to the bot, kept as background.

Hearing a message must cost almost nothing, in CPU and in memory however many groups there
are: ``hear`` only appends to a short list, and one task writes the list to the database a
moment later, in one statement per hundred messages. Whoever reads background flushes first,
so a question always sees every message heard before it. A ``kill -9`` loses at most the
messages of the last ``FLUSH_DELAY``.

Order comes from ``next_seq``: a strictly increasing number (microseconds since the epoch) that
every message takes as it arrives; a question carries the background whose numbers lie between
its conversation's mark and its own. A message is numbered before its chat's settings are read
(``arrive``), and settled once it is kept or not (``hear``, ``pass_over``); readers wait for the
messages numbered before theirs that are still being settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Hashable

from nonebot.log import logger

from ..memory.background import BackgroundLog
from ..memory.models import Heard

FLUSH_DELAY = 0.2  # seconds between hearing a message and writing it
FLUSH_ROWS = 500  # written at once when this many are waiting
PENDING_LIMIT = 20_000  # while the database cannot be written, older messages go first
RECENT_KEYS = 1024  # messages remembered to notice the same one received twice
SETTLE_WAIT = 5.0  # seconds a question waits for messages that arrived before it
SWEEP_EVERY = 60.0  # seconds between two deletions of background that grew too old


class ReadingAlong:
    """The background of every group: ``keep`` messages at most, none older than ``minutes``."""

    def __init__(self, log: BackgroundLog, *, keep: int, minutes: float) -> None:
        self.log = log
        self.keep = keep
        self.max_age = minutes * 60
        self._last_seq = 0
        self._pending: list[tuple[str, Heard]] = []
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._unsettled: dict[int, str] = {}  # seq -> chat
        self._settled = asyncio.Event()
        self._recent: OrderedDict[Hashable, str] = OrderedDict()  # message: account

    @property
    def on(self) -> bool:
        """Whether anything is kept at all (``GLM_BACKGROUND_MESSAGES`` above 0)."""
        return self.keep > 0

    def next_seq(self) -> int:
        """A number above every one given before (in this process and, clocks willing, the
        processes before it)."""
        self._last_seq = max(self._last_seq + 1, time.time_ns() // 1000)
        return self._last_seq

    def oldest_at(self) -> float:
        return time.time() - self.max_age

    async def start(self) -> None:
        """Number on from the numbers already kept (a clock set back since must not hide new
        messages behind them), hold every group to the bound again; start writing heard
        messages, deleting those grown too old."""
        self._last_seq = max(self._last_seq, await self.log.last_seq())
        if self.on:
            await self.log.trim(self.keep)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._write_behind(), name="glm-chat reading along"
            )

    def first_time(self, key: Hashable, account: str) -> bool:
        """Whether a message (known by ``key``) is new, not the copy another of the bot's QQ
        accounts in the same group received (a member saying the same twice is heard twice)."""
        heard_by = self._recent.get(key)
        if heard_by is not None and heard_by != account:
            return False
        self._recent[key] = account
        if len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)
        return True

    def arrive(self, chat: str) -> int:
        """Number a message of ``chat`` that may become background; settle it with ``hear`` or
        ``pass_over``."""
        seq = self.next_seq()
        self._unsettled[seq] = chat
        return seq

    def hear(self, chat: str, heard: Heard) -> None:
        """Keep ``heard`` (written shortly)."""
        self._settle(heard.seq)
        if not self.on:
            return
        self._pending.append((chat, heard))
        if len(self._pending) >= FLUSH_ROWS or len(self._pending) == 1:
            self._wake.set()

    def pass_over(self, seq: int) -> None:
        """The message numbered ``seq`` is not kept."""
        self._settle(seq)

    def _settle(self, seq: int) -> None:
        if self._unsettled.pop(seq, None) is not None:
            self._settled.set()

    def _unsettled_before(self, chat: str, until: int) -> bool:
        return any(seq < until and c == chat for seq, c in self._unsettled.items())

    async def _settled_before(self, chat: str, until: int) -> None:
        """Until every message of ``chat`` numbered before ``until`` is kept or passed over
        (at most ``SETTLE_WAIT`` seconds: a message stuck elsewhere must not hold it up)."""
        deadline = time.monotonic() + SETTLE_WAIT
        while self._unsettled and self._unsettled_before(chat, until):
            self._settled.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning("glm-chat: a question went on without a message still arriving")
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._settled.wait(), left)

    async def flush(self) -> None:
        """Write every message heard so far (returns once they are in the database)."""
        async with self._write_lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                await self.log.add(rows, self.keep)
            except BaseException:
                self._pending = (rows + self._pending)[-PENDING_LIMIT:]
                raise

    async def since(self, chat: str, conversation: str, until: int) -> list[Heard]:
        """The background ``conversation`` has not carried yet, heard before ``until``."""
        if not self.on:
            return []
        await self._settled_before(chat, until)
        await self._flush_or_log()
        return await self.log.since(
            chat, conversation, until, keep=self.keep, oldest_at=self.oldest_at()
        )

    async def find(self, chat: str, message_id: str, until: int) -> Heard | None:
        """A kept message of ``chat`` heard before ``until``, by its QQ id (for a quote QQ
        could not look up)."""
        if not self.on or not message_id:
            return None
        await self._settled_before(chat, until)
        await self._flush_or_log()
        found = await self.log.find(chat, message_id)
        return found if found is not None and found.at >= self.oldest_at() else None

    async def count(self, chat: str) -> int:
        await self._flush_or_log()
        return await self.log.count(chat, self.oldest_at())

    async def _flush_or_log(self) -> None:
        """Write what waits before reading; if that fails, read what is already written (the
        background is a help, never a reason to leave a question unanswered)."""
        try:
            await self.flush()
        except Exception as error:
            logger.opt(exception=error).error("glm-chat: cannot keep the background")

    async def mark(self, conversation: str, until: int, *, with_members: bool = False) -> None:
        """``conversation`` (``with_members``: and its members') will not be sent what was
        heard before ``until`` (a reset)."""
        await self._flush_or_log()
        await self.log.mark(conversation, until, with_members=with_members)

    async def forget(self, chat: str) -> int:
        """Forget all of ``chat``'s background, waiting and written (see ``BackgroundLog``)."""
        async with self._write_lock:
            self._pending = [(c, heard) for c, heard in self._pending if c != chat]
            return await self.log.forget(chat)

    async def close(self) -> None:
        """Write what is waiting and stop."""
        if self._task is not None:
            # Asked, not cancelled: before Python 3.12 a cancellation that arrives just as
            # ``wait_for`` finishes is lost, and the writer would wait another minute.
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as error:
            logger.opt(exception=error).error("glm-chat: the last background was not kept")

    async def _write_behind(self) -> None:
        swept = 0.0
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_EVERY)
            self._wake.clear()
            if self._closing:
                return  # ``close`` writes what waits
            if len(self._pending) < FLUSH_ROWS:
                await asyncio.sleep(FLUSH_DELAY)
            try:
                await self.flush()
                if time.monotonic() - swept >= SWEEP_EVERY:
                    swept = time.monotonic()
                    await self.log.sweep(self.oldest_at())
                    await self.log.empty_wal()  # old page images of what was deleted go too
            except Exception as error:  # the next flush tries again; nothing is lost yet
                logger.opt(exception=error).error("glm-chat: cannot keep the background")
