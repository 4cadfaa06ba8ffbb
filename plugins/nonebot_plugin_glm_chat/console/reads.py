"""What the console shows, as plain JSON-ready data: the API returns it and the pages render it.

Everything comes from the running services (the store, the call statistics, the key pool), the
same objects the ``/glm`` commands read. No key or secret is ever part of it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import nonebot

from ..chat.context import BACKGROUND_HEADER, CHIME_CUE, QUOTE_MARK
from ..chat.service import week_start
from ..chat.stats import WindowSummary
from ..glm.client import CallRecord
from ..memory.models import ChatListing, ChatOptions, DayUsage, StoredTurn, Summary, Turn
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
        "tools": services.chat.tools_on(options),
        "listen": options.listen,
        "chime": options.chime,
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


def is_remark(turn: Turn) -> bool:
    """Whether a stored turn is an unprompted remark (nobody asked: its question is the cue)."""
    return turn.speaker is None and turn.question == CHIME_CUE


def context_parts(context: str) -> tuple[int, bool]:
    """What went with a question: how many background messages, and whether a quote. Only the
    bot writes at column 0 (section markers and labels); members' continuation lines are
    indented, so each column-0 line under the background's header is one message."""
    heard, quoted, in_background = 0, False, False
    for line in context.splitlines():
        if not line or line[0].isspace():
            continue
        if line == BACKGROUND_HEADER:
            in_background = True
        elif line.startswith(QUOTE_MARK):
            quoted, in_background = True, False
        elif in_background:
            heard += 1
    return heard, quoted


def context_title(context: str, remark: bool = False) -> str:
    """The line that stands for a turn's context while it is folded away."""
    heard, quoted = context_parts(context)
    messages = f"群消息（{heard} 条）" if heard else ""
    if remark:
        return f"插话时看到的{messages or '群消息'}"
    if messages and quoted:
        return f"提问时带着的{messages}和引用"
    return f"提问时带着的{messages}" if messages else "提问时引用的消息"


def _summary(summary: Summary | None) -> dict[str, Any] | None:
    if summary is None or not summary.text:  # none, or only turns let go as too long
        return None
    return {"text": summary.text, "turns": summary.turns, "updated_at": summary.updated_at or None}


def _turn(stored: StoredTurn, chat: str = "", summary: Summary | None = None) -> dict[str, Any]:
    turn = stored.turn
    speaker = turn.speaker
    return {
        "conversation": stored.conversation,
        "speaker": {"id": speaker.user_id, "name": speaker.name} if speaker else None,
        "question": turn.question,
        "answer": turn.answer,
        "context": turn.context,  # as the model read it: background, quote ("" when none)
        # Remarks are made in groups only: the cue typed in a private chat is just a question.
        "remark": stored.conversation.startswith("group:") and is_remark(turn),
        # Folded into the chat's summary (the turn is still kept, and shown).
        "in_summary": summary is not None
        and stored.conversation == chat
        and stored.created_at <= summary.upto_at,
        "model": stored.model,
        "prompt_tokens": stored.prompt_tokens,
        "completion_tokens": stored.completion_tokens,
        "at": stored.created_at,
    }


async def _listening(services: Services, chat_key: str) -> dict[str, Any] | None:
    """A group's reading along: how many messages are kept now, and the bot-wide limits."""
    if not chat_key.startswith("group:"):
        return None
    reading, config = services.reading, services.config
    return {
        "kept": await reading.count(chat_key) if reading.on else 0,
        "limit": reading.keep,  # 0: GLM_BACKGROUND_MESSAGES=0, no group is read along
        "minutes": config.glm_background_minutes,
        "chime_gap": config.glm_chime_gap,
    }


async def chat(services: Services, chat_key: str, limit: int = TURNS_SHOWN) -> dict[str, Any]:
    """One chat: its settings, its summary (None while it has none, or with GLM_SUMMARY=off),
    what it keeps of the group's talk, its latest turns (newest first)."""
    store = services.chat.store
    tokens_today, tokens_week = await services.chat.recent_tokens(chat_key)
    turns = await store.chat_turns(chat_key, limit)
    summary = await store.summary(chat_key) if services.chat.summarizer is not None else None
    return {
        "chat": chat_key,
        "kind": chat_kind(chat_key),
        "settings": settings_of(services, chat_key, await services.chat.options(chat_key)),
        "summary": _summary(summary),
        "listening": await _listening(services, chat_key),
        "turns_kept": await store.count_chat(chat_key),
        "tokens_today": tokens_today,
        "tokens_week": tokens_week,
        "turns": [_turn(stored, chat_key, summary) for stored in turns],
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
