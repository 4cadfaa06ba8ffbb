from datetime import datetime, timedelta

from plugins.nonebot_plugin_glm_chat.chat.stats import CallStats, percentile
from plugins.nonebot_plugin_glm_chat.glm.client import CallRecord


def record(total_s: float, *, error: str | None = None, code=None, status=None) -> CallRecord:
    return CallRecord(
        "group:1", "m", "stream", total_s=total_s, error=error, code=code, status=status
    )


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) == 0.0


def test_summary_counts_success_latency_and_errors_by_code():
    stats = CallStats()
    for i in range(18):
        stats.record(record(1.0 + i / 100))
    stats.record(record(9.0, error="RateLimitError", code="1302", status=429))
    stats.record(record(5.0, error="UpstreamError", status=500))
    today, since_start = stats.summaries()
    assert today == since_start
    assert (today.calls, today.succeeded) == (20, 18)
    assert today.success_rate == 0.9
    assert today.p50_s == 1.09
    assert today.p95_s == 5.0
    assert today.errors == {"1302": 1, "HTTP 500": 1}


def test_today_starts_afresh_at_midnight():
    now = datetime(2026, 11, 22, 23, 59).timestamp()
    clock = [now]
    stats = CallStats(lambda: clock[0])
    stats.record(record(1.0))
    clock[0] = (datetime(2026, 11, 22, 23, 59) + timedelta(minutes=2)).timestamp()
    stats.record(record(2.0, error="APITimeoutError"))
    today, since_start = stats.summaries()
    assert (today.calls, since_start.calls) == (1, 2)
    assert today.errors == {"APITimeoutError": 1}


def test_the_console_sees_recent_calls_and_counts_per_hour():
    now = [datetime(2026, 11, 22, 15, 30).timestamp()]
    stats = CallStats(clock=lambda: now[0])
    for minutes_ago, failed in ((200, False), (50, False), (20, True), (5, False)):
        call = record(1.0, error="UpstreamError" if failed else None)
        call.started_at = now[0] - minutes_ago * 60
        call.usage.prompt_tokens = 10
        stats.record(call)
    hours = stats.hours(4)
    assert [datetime.fromtimestamp(h.start).hour for h in hours] == [12, 13, 14, 15]
    assert [(h.calls, h.failed, h.tokens) for h in hours] == [
        (1, 0, 10),
        (0, 0, 0),
        (1, 0, 10),
        (2, 1, 20),
    ]
    assert len(stats.recent) == 4 and not stats.recent[2].ok
