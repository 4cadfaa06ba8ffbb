"""What the console shows, as plain JSON-ready data: the API returns it and the pages render it.

Everything comes from the running services (the store, the call statistics, the key pool), the
same objects the ``/glm`` commands read. No key or secret is ever part of it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import nonebot

from ..chat.service import week_start
from ..chat.stats import WindowSummary
from ..glm.client import CallRecord
from ..memory.models import ChatListing, ChatOptions, DayUsage, StoredTurn
from ..runtime import Services, call_line

CHART_CHATS = 6  # chats drawn by name in the usage chart; the rest are summed as 其他
OTHER_CHATS = "其他"
TURNS_SHOWN = 100


def _today() -> date:
    return date.today()


def _window(summary: WindowSummary) -> dict[str, Any]:
    return {
        "calls": summary.calls,
        "succeeded": summary.succeeded,
        "success_rate": summary.success_rate,
        "p50_s": summary.p50_s,
        "p95_s": summary.p95_s,
        "errors": summary.errors,
    }


def chat_kind(chat: str) -> str:
    """``群聊``, ``私聊`` or ``控制台``, from a chat key."""
    kind = chat.partition(":")[0]
    return {"group": "群聊", "private": "私聊", "console": "控制台"}.get(kind, kind)


def bots() -> list[dict[str, str]]:
    """The QQ accounts connected now."""
    return [
        {"self_id": self_id, "adapter": bot.adapter.get_name()}
        for self_id, bot in nonebot.get_bots().items()
    ]


def keys(services: Services) -> list[dict[str, Any]]:
    """Each key by its id, and whether (and why, until when) it rests."""
    pool = services.chat.client.keys
    if pool is None:
        return []
    resting = {rest.label: rest for rest in pool.resting()}
    shown = []
    for label in pool.labels:
        rest = resting.get(label)
        shown.append(
            {
                "id": label,
                "resting": rest is not None,
                "reason": rest.reason if rest else None,
                "until": rest.until if rest else None,
            }
        )
    return shown


async def overview(services: Services) -> dict[str, Any]:
    today, since_start = services.stats.summaries()
    day = _today()
    by_day = await services.chat.store.tokens_by_day((day - timedelta(days=13)).isoformat())
    days = [(day - timedelta(days=back)).isoformat() for back in range(13, -1, -1)]
    return {
        "bots": bots(),
        "calls_today": _window(today),
        "calls_since_start": _window(since_start),
        "keys": keys(services),
        "tokens_today": by_day.get(day.isoformat(), 0),
        "tokens_by_day": [{"day": d, "tokens": by_day.get(d, 0)} for d in days],
        "calls_by_hour": [asdict(hour) for hour in services.stats.hours(24)],
        "model": services.chat.settings.model,
        "call_mode": services.chat.settings.call_mode,
    }


def settings_of(services: Services, chat: str, options: ChatOptions) -> dict[str, Any]:
    """A chat's settings as the API names them, with what applies where nothing is set."""
    defaults = services.chat.settings
    return {
        "persona": options.persona,
        "model": options.model,
        "mode": "personal" if options.personal else "shared",
        "enabled": options.enabled,
        "search": options.web_search,
        "default_persona": defaults.system_prompt,
        "default_model": defaults.model,
        "group": chat.startswith("group:"),
    }


def _listing(services: Services, listing: ChatListing) -> dict[str, Any]:
    return {
        "chat": listing.chat,
        "kind": chat_kind(listing.chat),
        "turns": listing.turns,
        "last_at": listing.last_at or None,
        "tokens_today": listing.tokens_today,
        "tokens_week": listing.tokens_week,
        "settings": settings_of(services, listing.chat, listing.options),
    }


async def chats(services: Services, *, search: str = "", offset: int = 0, limit: int = 50):
    """One page of chats by last activity, and how many there are in all."""
    store = services.chat.store
    day = _today()
    listed = await store.list_chats(
        day.isoformat(), week_start(day), limit=limit, offset=offset, search=search
    )
    return {
        "total": await store.count_chats(search),
        "offset": offset,
        "limit": limit,
        "chats": [_listing(services, listing) for listing in listed],
    }


def _turn(stored: StoredTurn) -> dict[str, Any]:
    speaker = stored.turn.speaker
    return {
        "conversation": stored.conversation,
        "speaker": {"id": speaker.user_id, "name": speaker.name} if speaker else None,
        "question": stored.turn.question,
        "answer": stored.turn.answer,
        "model": stored.model,
        "prompt_tokens": stored.prompt_tokens,
        "completion_tokens": stored.completion_tokens,
        "at": stored.created_at,
    }


async def chat(services: Services, chat_key: str, limit: int = TURNS_SHOWN) -> dict[str, Any]:
    """One chat: its settings, its summary (none yet), its latest turns (newest first)."""
    store = services.chat.store
    tokens_today, tokens_week = await services.chat.recent_tokens(chat_key)
    turns = await store.chat_turns(chat_key, limit)
    return {
        "chat": chat_key,
        "kind": chat_kind(chat_key),
        "settings": settings_of(services, chat_key, await services.chat.options(chat_key)),
        "summary": None,
        "turns_kept": await store.count_chat(chat_key),
        "tokens_today": tokens_today,
        "tokens_week": tokens_week,
        "turns": [_turn(stored) for stored in turns],
    }


async def usage(services: Services, days: int) -> dict[str, Any]:
    """Tokens per day (oldest first) for the chats that spent most, the rest summed."""
    store = services.chat.store
    day = _today()
    since = (day - timedelta(days=days - 1)).isoformat()
    labels = [(day - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    totals = await store.tokens_by_day(since)
    top = await store.top_chats(since, CHART_CHATS)
    series = []
    for chat_key, spent in top:
        per_day = {d: t for _, d, t in await store.usage_since(since, chat_key)}
        series.append(
            {"chat": chat_key, "total": spent, "tokens": [per_day.get(d, 0) for d in labels]}
        )
    others = [totals.get(d, 0) - sum(s["tokens"][i] for s in series) for i, d in enumerate(labels)]
    if any(others):
        series.append({"chat": OTHER_CHATS, "total": sum(others), "tokens": others})
    return {
        "days": labels,
        "total": [totals.get(d, 0) for d in labels],
        "series": series,
    }


async def usage_rows(services: Services, days: int) -> list[DayUsage]:
    since = (_today() - timedelta(days=days - 1)).isoformat()
    return await services.chat.store.daily_usage(since)


def _call(record: CallRecord) -> dict[str, Any]:
    return {
        "at": record.started_at,
        "conversation": record.conversation,
        "model": record.model,
        "mode": record.mode,
        "ok": record.ok,
        "attempts": record.attempts,
        "status": record.status,
        "code": record.code,
        "error": record.error,
        "ttft_s": record.first_token_s,
        "total_s": record.total_s,
        "prompt_tokens": record.usage.prompt_tokens,
        "completion_tokens": record.usage.completion_tokens,
        "key": record.key or None,
        "line": call_line(record),
    }


def calls(
    services: Services,
    *,
    limit: int = 100,
    conversation: str = "",
    failed_only: bool = False,
    model: str = "",
) -> list[dict[str, Any]]:
    """The most recent API calls, newest first, filtered."""
    shown = []
    for record in reversed(services.stats.recent):
        if conversation and conversation not in record.conversation:
            continue
        if failed_only and record.ok:
            continue
        if model and record.model != model:
            continue
        shown.append(_call(record))
        if len(shown) >= limit:
            break
    return shown
