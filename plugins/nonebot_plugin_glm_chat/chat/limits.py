"""Limits on asking: a per-member cooldown, and notices that are not themselves repeated."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from enum import Enum


class Verdict(Enum):
    ASK = "ask"  # go ahead
    WARN = "warn"  # too soon: say so, once per wait
    QUIET = "quiet"  # too soon, and already told


class Cooldown:
    """At most one question per window per key; keys are forgotten once they cool down.

    The window comes with each call (``GLM_COOLDOWN``; 0: none), so nothing here goes stale.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, tuple[float, bool]] = {}  # key -> (asked at, warned since)
        self._pruned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._last)

    def check(self, key: str, seconds: float) -> Verdict:
        if seconds <= 0:
            return Verdict.ASK
        now = self._clock()
        # Forget cooled keys at most once a window: one pass per window, not one per call.
        if len(self._last) > 1024 and now - self._pruned_at >= seconds:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < seconds}
            self._pruned_at = now
        last = self._last.get(key)
        if last is None or now - last[0] >= seconds:
            self._last[key] = (now, False)
            return Verdict.ASK
        if last[1]:
            return Verdict.QUIET
        self._last[key] = (last[0], True)
        return Verdict.WARN

    def remaining(self, key: str, seconds: float) -> float:
        last = self._last.get(key)
        return max(0.0, seconds - (self._clock() - last[0])) if last else 0.0

    async def ask(self, key: str, seconds: float) -> tuple[Verdict, float]:
        """``check``, and the seconds left of the window (as ``SharedCooldown`` answers)."""
        verdict = self.check(key, seconds)
        return verdict, self.remaining(key, seconds) if verdict is not Verdict.ASK else 0.0


class OncePerDay:
    """Remembers which keys were told something today (one entry per key at most)."""

    def __init__(self, today: Callable[[], str] = lambda: date.today().isoformat()) -> None:
        self._today = today
        self._told: dict[str, str] = {}

    async def first_today(self, key: str) -> bool:
        """True the first time a key asks on a given day."""
        today = self._today()
        if self._told.get(key) == today:
            return False
        self._told[key] = today
        return True
