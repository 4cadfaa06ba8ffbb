"""When the bot speaks up unprompted: a chance per message heard, and a gap per group."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class ChimeGate:
    """Decides, per message heard, whether the bot makes a remark: with ``percent`` chance,
    and at most once per ``gap`` seconds per chat. Remembers only chats that remarked within
    the gap, so its memory does not grow with the number of groups."""

    def __init__(
        self,
        gap: float,
        *,
        chance: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gap = gap
        self._chance = chance
        self._clock = clock
        self._last: dict[str, float] = {}

    def due(self, chat: str, percent: int) -> bool:
        """Whether to remark now (if so, the gap starts now)."""
        if percent <= 0 or self._chance() * 100 >= percent:
            return False
        now = self._clock()
        last = self._last.get(chat)
        if last is not None and now - last < self.gap:
            return False
        self._last[chat] = now
        if len(self._last) > 256:
            self._last = {c: t for c, t in self._last.items() if now - t < self.gap}
        return True
