"""One queue per chat: its messages and commands are handled one at a time, in arrival order.

A message takes its ``Place`` when it arrives (``reserve``) and is given its ``Work`` once the
QQ side knows what it is (``fill``: a question, a command, or nothing to do). Each chat has a
worker task that runs the work in place order. In a personal-mode group every member has a
lane of their own: work on different members' conversations runs side by side, while work on
the whole chat waits until every lane is idle and holds back everything behind it. ``close``
cancels all of it and finishes every place, so nothing that waits can outlive shutdown.
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
    """What a message asks for. ``run`` returns False when it lets the message go without a
    word (then other plugins may take it)."""

    run: Callable[[], Awaitable[object]]
    # The member whose own conversation it touches (their lane in personal mode), or None
    # when it concerns the whole chat (a shared conversation, the chat's settings).
    member: str | None = None


class QueueClosedError(RuntimeError):
    """The bot is shutting down; the work was not run."""


class Place:
    """A message's place in its chat's queue."""

    __slots__ = ("error", "filled", "finished", "let_go", "work")

    def __init__(self) -> None:
        self.filled = asyncio.Event()
        self.finished = asyncio.Event()
        self.work: Work | None = None
        self.error: BaseException | None = None
        self.let_go = False  # the work ran and said nothing

    async def wait(self) -> None:
        """Until the work has run (or never will); raises what the work raised."""
        await self.finished.wait()
        if self.error is not None:
            raise self.error


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
        self._unfinished: set[Place] = set()
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
        self._unfinished.add(place)
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
        """Run ``run`` in its turn in ``chat``'s queue and return its result (for callers that
        are not QQ messages: the console, tests)."""
        results: list[T] = []

        async def work() -> None:
            results.append(await run())

        place = self.reserve(chat)
        self.fill(place, Work(work, member))
        await place.wait()
        if not results:
            raise QueueClosedError("glm-chat is shutting down")
        return results[0]

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel all queued and running work, wait (at most ``timeout``) for it to stop, and
        finish every place, so that whoever waits for one goes on."""
        self._closed = True
        tasks = [task for line in self._chats.values() for task in line.tasks]
        self._chats = {}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for place in self._unfinished:
            place.finished.set()
        self._unfinished.clear()

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
                    self._finish(place)
                elif work.member is not None and await self._lanes_apply(chat):
                    self._to_lane(chat, line, work.member, place)
                else:
                    await self._lanes_idle(line)
                    await self._run(place)
        finally:
            line.worker = None

    async def _lanes_apply(self, chat: str) -> bool:
        """Whether ``chat`` gives members lanes now (if that cannot be read: no, and say so)."""
        try:
            return await self._personal(chat)
        except Exception as error:
            logger.opt(exception=error).error(f"glm-chat: cannot read the mode of {chat}")
            return False

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

    async def _run(self, place: Place) -> None:
        """Run a place's work; what it raises (a cancellation aside) goes to its waiter."""
        assert place.work is not None
        try:
            place.let_go = await place.work.run() is False
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # the waiter re-raises it (a test's failure included)
            place.error = error
        finally:
            place.work = None  # what the work held (the event, the bot) can go
            self._finish(place)

    def _finish(self, place: Place) -> None:
        self._unfinished.discard(place)
        place.finished.set()
