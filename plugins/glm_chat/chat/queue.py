"""One queue per chat: its messages and commands are handled one at a time, in arrival order.

A message takes its ``Place`` when it arrives (``reserve``) and is given its ``Work`` once the
QQ side knows what it is (``fill``: a question, a command, or nothing to do). Each chat has a
worker task that runs the work in place order. In a personal-mode group every member has a
lane of their own: work on different members' conversations runs side by side, while work on
the whole chat waits until every lane is idle and holds back everything behind it. ``close``
cancels all of it, so nothing that waits can outlive shutdown.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from nonebot.log import logger

T = TypeVar("T")


@dataclass(frozen=True)
class Work:
    """What a message asks for."""

    run: Callable[[], Awaitable[object]]
    # The member whose own conversation it touches (their lane in personal mode), or None
    # when it concerns the whole chat (a shared conversation, the chat's settings).
    member: str | None = None


class QueueClosedError(RuntimeError):
    """The bot is shutting down; the work was not run."""


class Place:
    """A message's place in its chat's queue."""

    __slots__ = ("error", "filled", "finished", "work")

    def __init__(self) -> None:
        self.filled = asyncio.Event()
        self.finished = asyncio.Event()
        self.work: Work | None = None
        self.error: BaseException | None = None

    async def wait(self) -> None:
        """Until the work has run (or will never run)."""
        await self.finished.wait()


@dataclass(eq=False)
class _Chat:
    places: deque[Place] = field(default_factory=deque)
    lanes: dict[str, deque[Place]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # the worker and the lanes
    worker: asyncio.Task[None] | None = None


class ChatQueues:
    """Every chat's queue. ``personal(chat)`` says whether a chat gives members their own lanes."""

    def __init__(self, personal: Callable[[str], Awaitable[bool]]) -> None:
        self._personal = personal
        self._chats: dict[str, _Chat] = {}
        self._closed = False

    def __len__(self) -> int:
        """Chats with work queued or running."""
        return len(self._chats)

    def reserve(self, chat: str) -> Place:
        """Take the next place in ``chat``'s queue; nothing behind it runs until it is filled."""
        place = Place()
        if self._closed:
            place.finished.set()
            return place
        line = self._chats.get(chat)
        if line is None:
            line = self._chats[chat] = _Chat()
        line.places.append(place)
        if line.worker is None:
            line.worker = self._start(chat, line, self._drain(chat, line))
        return place

    @staticmethod
    def fill(place: Place, work: Work | None) -> None:
        """Give a place its work (None: the message needs nothing). Only the first fill counts."""
        if not place.filled.is_set():
            place.work = work
            place.filled.set()

    async def submit(
        self, chat: str, run: Callable[[], Awaitable[T]], member: str | None = None
    ) -> T:
        """Run ``run`` in its turn in ``chat``'s queue and return its result."""
        results: list[T] = []

        async def work() -> None:
            results.append(await run())

        place = self.reserve(chat)
        self.fill(place, Work(work, member))
        await place.wait()
        if place.error is not None:
            raise place.error
        if not results:
            raise QueueClosedError("glm-chat is shutting down")
        return results[0]

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel all queued and running work and wait (at most ``timeout``) for it to stop."""
        self._closed = True
        lines, self._chats = list(self._chats.values()), {}
        tasks = [task for line in lines for task in line.tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for line in lines:
            for place in [*line.places, *(p for lane in line.lanes.values() for p in lane)]:
                place.finished.set()

    # --- inside -------------------------------------------------------------------------------
    def _start(self, chat: str, line: _Chat, job: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(job, name=f"glm-chat queue {chat}")
        line.tasks.add(task)

        def finished(task: asyncio.Task[None]) -> None:
            line.tasks.discard(task)
            if not line.tasks and not line.places and self._chats.get(chat) is line:
                del self._chats[chat]

        task.add_done_callback(finished)
        return task

    async def _drain(self, chat: str, line: _Chat) -> None:
        try:
            while line.places:
                place = line.places[0]
                await place.filled.wait()
                line.places.popleft()
                work = place.work
                if work is None:
                    place.finished.set()
                elif work.member is not None and await self._personal(chat):
                    self._to_lane(chat, line, work.member, place)
                else:
                    await self._lanes_idle(line)
                    await self._run(place)
        finally:
            line.worker = None

    def _to_lane(self, chat: str, line: _Chat, member: str, place: Place) -> None:
        lane = line.lanes.get(member)
        if lane is not None:
            lane.append(place)
            return
        lane = line.lanes[member] = deque([place])
        self._start(chat, line, self._drain_lane(line, member, lane))

    async def _drain_lane(self, line: _Chat, member: str, lane: deque[Place]) -> None:
        try:
            while lane:
                await self._run(lane[0])
                lane.popleft()
        finally:
            del line.lanes[member]

    @staticmethod
    async def _lanes_idle(line: _Chat) -> None:
        running = [task for task in line.tasks if task is not line.worker]
        if running:
            await asyncio.wait(running)

    @staticmethod
    async def _run(place: Place) -> None:
        assert place.work is not None
        try:
            await place.work.run()
        except Exception as error:
            place.error = error
            logger.opt(exception=error).error("glm-chat: a queued job failed")
        finally:
            place.finished.set()
