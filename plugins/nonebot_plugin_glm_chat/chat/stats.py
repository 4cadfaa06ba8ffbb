"""API call statistics for ``/glm stats``: calls, success rate, latency percentiles, errors."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from ..glm.client import CallRecord

# Latencies kept per window for the percentiles; older ones fall off (memory stays flat).
LATENCY_SAMPLES = 10_000
RECENT_CALLS = 500  # the console's list of recent calls
HOURS_KEPT = 48  # the console's chart of calls per hour


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(fraction * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class WindowSummary:
    calls: int
    succeeded: int
    p50_s: float
    p95_s: float
    errors: dict[str, int]

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.calls if self.calls else 1.0


@dataclass
class Window:
    """Counters for one span of time."""

    calls: int = 0
    succeeded: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, record: CallRecord) -> None:
        self.calls += 1
        self.latencies.append(record.total_s)
        if record.ok:
            self.succeeded += 1
        else:
            self.errors[error_key(record)] += 1

    def summary(self) -> WindowSummary:
        ordered = sorted(self.latencies)
        return WindowSummary(
            self.calls,
            self.succeeded,
            percentile(ordered, 0.50),
            percentile(ordered, 0.95),
            dict(self.errors.most_common()),
        )


def error_key(record: CallRecord) -> str:
    """How an error is counted: Zhipu's code, else the HTTP status, else the error's kind."""
    if record.code:
        return record.code
    if record.status:
        return f"HTTP {record.status}"
    return record.error or "unknown"


@dataclass
class Hour:
    """Calls that started in one clock hour."""

    start: float  # epoch seconds, on the hour
    calls: int = 0
    failed: int = 0
    tokens: int = 0


class CallStats:
    """Collects every ``CallRecord`` since start and for the current (local) day, the most
    recent calls themselves, and counts per hour."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.since_start = Window()
        self.today = Window()
        self._day = self._date()
        self.recent: deque[CallRecord] = deque(maxlen=RECENT_CALLS)
        self._hours: dict[float, Hour] = {}  # by the hour's start

    def _date(self) -> date:
        return datetime.fromtimestamp(self._clock()).date()

    def _roll_day(self) -> None:
        day = self._date()
        if day != self._day:
            self._day, self.today = day, Window()

    def record(self, record: CallRecord) -> None:
        self._roll_day()
        self.since_start.add(record)
        self.today.add(record)
        self.recent.append(record)
        hour = self._hour(record.started_at)
        hour.calls += 1
        hour.failed += not record.ok
        hour.tokens += record.usage.prompt_tokens + record.usage.completion_tokens

    def _hour(self, at: float) -> Hour:
        start = _hour_start(at)
        hour = self._hours.get(start)
        if hour is None:
            hour = self._hours[start] = Hour(start)
            if len(self._hours) > HOURS_KEPT:
                del self._hours[min(self._hours)]
        return hour

    def hours(self, count: int = 24) -> list[Hour]:
        """The last ``count`` clock hours, oldest first, the current one included (empty hours
        too)."""
        current = _hour_start(self._clock())
        starts = [current - 3600 * back for back in range(count - 1, -1, -1)]
        return [self._hours.get(start) or Hour(start) for start in starts]

    def summaries(self) -> tuple[WindowSummary, WindowSummary]:
        """``(today, since_start)``."""
        self._roll_day()
        return self.today.summary(), self.since_start.summary()


def _hour_start(at: float) -> float:
    """The start of the local clock hour that ``at`` falls in."""
    return datetime.fromtimestamp(at).replace(minute=0, second=0, microsecond=0).timestamp()
