"""``Cooldown``: how often one person may ask, and a warning that is not itself repeated."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class Verdict(Enum):
    ASK = "ask"  # go ahead
    WARN = "warn"  # too soon: say so, once per wait
    QUIET = "quiet"  # too soon, and already told


class Cooldown:
    """At most one question per ``seconds`` per key; keys are forgotten once they cool down."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: dict[str, tuple[float, bool]] = {}  # key -> (asked at, warned since)

    def __len__(self) -> int:
        return len(self._last)

    def check(self, key: str) -> Verdict:
        if self.seconds <= 0:
            return Verdict.ASK
        now = self._clock()
        if len(self._last) > 1024:
            self._forget_cooled(now)
        last = self._last.get(key)
        if last is None or now - last[0] >= self.seconds:
            self._last[key] = (now, False)
            return Verdict.ASK
        if last[1]:
            return Verdict.QUIET
        self._last[key] = (last[0], True)
        return Verdict.WARN

    def remaining(self, key: str) -> float:
        last = self._last.get(key)
        return max(0.0, self.seconds - (self._clock() - last[0])) if last else 0.0

    def _forget_cooled(self, now: float) -> None:
        self._last = {k: v for k, v in self._last.items() if now - v[0] < self.seconds}
