"""``Slots``: how many calls may be in flight at once, with answers before work that can wait.

A call that can wait (a summary written after an answer went out) takes a slot only when no
answer is waiting for one and, when there are two slots or more, one more stays free: an answer
arriving meanwhile starts at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    def __init__(self, size: int) -> None:
        self._size = size
        self._busy = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._patient: deque[asyncio.Future[None]] = deque()

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def size(self) -> int:
        return self._size

    def resize(self, size: int) -> None:
        """Allow ``size`` calls at once from now on (those in flight finish as they are)."""
        self._size = max(1, size)
        self._hand_on()

    @asynccontextmanager
    async def take(self, *, can_wait: bool = False) -> AsyncIterator[None]:
        """Hold a slot for the duration of the block."""
        await self._acquire(can_wait)
        try:
            yield
        finally:
            self._busy -= 1
            self._hand_on()

    def _free(self, can_wait: bool) -> bool:
        if not can_wait:
            return self._busy < self._size
        spare = 1 if self._size > 1 else 0
        return not self._urgent and self._busy < self._size - spare

    async def _acquire(self, can_wait: bool) -> None:
        line = self._patient if can_wait else self._urgent
        if not line and self._free(can_wait):
            self._busy += 1
            return
        ticket = asyncio.get_running_loop().create_future()
        line.append(ticket)
        try:
            await ticket  # ``_hand_on`` counts the slot as ours before it wakes us
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self._busy -= 1  # given to us just as we were cancelled: pass it on
                self._hand_on()
            elif ticket in line:
                line.remove(ticket)
            raise

    def _hand_on(self) -> None:
        for line, can_wait in ((self._urgent, False), (self._patient, True)):
            while line and self._free(can_wait):
                ticket = line.popleft()
                if not ticket.done():
                    self._busy += 1
                    ticket.set_result(None)
