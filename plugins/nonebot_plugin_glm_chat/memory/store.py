"""``ContextStore``: conversation turns, one row per whole turn, in SQLite (the default) or
PostgreSQL (``GLM_DB_URL``); the rest of the plugin does not know which."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from ..glm.completion import Usage
from .background import BackgroundLog, members_of
from .db import Database, SchemaTooNewError, StoreOpenError, require_asyncpg
from .models import (
    DEFAULT_OPTIONS,
    ChatListing,
    ChatOptions,
    DayUsage,
    NumberedTurn,
    Speaker,
    StoredTurn,
    Summary,
    Turn,
)
from .sqlite import open_sqlite

__all__ = ["ContextStore", "SchemaTooNewError", "StoreOpenError", "open_store"]


async def open_store(path: Path | str, url: str | None = None) -> ContextStore:
    """The store in PostgreSQL at ``url`` when one is given, else in the SQLite file at
    ``path``; raises ``StoreOpenError`` saying why when it cannot be used."""
    if not url:
        return await ContextStore.open(path)
    require_asyncpg(url)
    from .postgres import open_postgres

    return ContextStore(await open_postgres(url))


class ContextStore:
    """Reads and writes conversation context on a ``Database``; open with ``open_store``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.background = BackgroundLog(db)

    @classmethod
    async def open(cls, path: Path | str) -> ContextStore:
        """The store in an SQLite file (created with mode 0600, its folder too), its schema
        brought up to date."""
        return cls(await open_sqlite(path))

    async def close(self) -> None:
        await self.db.close()

    async def schema_version(self) -> int:
        return await self.db.schema_version()

    async def append_turn(
        self,
        conversation: str,
        turn: Turn,
        *,
        model: str = "",
        usage: Usage | None = None,
        scope: str | None = None,
        heard: int | None = None,
    ) -> None:
        """Store a whole turn, and count its tokens for ``scope`` (default: the conversation);
        ``heard``: the group's background before it has now been carried. One statement, so
        one atomic write."""
        usage = usage or Usage()
        speaker = turn.speaker
        await self.db.execute(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " model, prompt_tokens, completion_tokens, created_at, scope, context, heard)"
            " VALUES (:conversation,"
            " (SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE conversation = :conversation),"
            " :speaker_id, :speaker_name, :question, :answer, :model, :prompt_tokens,"
            " :completion_tokens, :created_at, :scope, :context, :heard)",
            {
                "conversation": conversation,
                "speaker_id": speaker.user_id if speaker else None,
                "speaker_name": speaker.name if speaker else None,
                "question": turn.question,
                "answer": turn.answer,
                "model": model,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "created_at": time.time(),
                "scope": scope,
                "context": turn.context or None,
                "heard": heard,
            },
            retry=True,  # another process may have taken the number
        )

    async def count_usage(self, scope: str, usage: Usage) -> None:
        """Count the tokens of an answer that was paid for but not kept as a turn (QQ refused
        it), so that daily limits and ``/glm usage`` see every token spent."""
        await self.db.execute(
            "INSERT INTO usage_daily (scope, day, tokens, turns)"
            " VALUES (:scope, :day, :tokens, 0)"
            " ON CONFLICT (scope, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens",
            {
                "scope": scope,
                "day": date.today().isoformat(),
                "tokens": usage.prompt_tokens + usage.completion_tokens,
            },
        )

    async def recent(self, conversation: str, limit: int, *, after: int = 0) -> list[Turn]:
        """The last ``limit`` turns of a conversation (those after turn ``after``), oldest
        first."""
        return [numbered.turn for numbered in await self.numbered(conversation, limit, after)]

    async def numbered(
        self, conversation: str, limit: int, after: int = 0, *, oldest: bool = False
    ) -> list[NumberedTurn]:
        """The last (``oldest``: first) ``limit`` turns after turn ``after``, oldest first,
        with their numbers."""
        if limit <= 0:
            return []
        rows = await self.db.fetch(
            "SELECT seq, created_at, speaker_id, speaker_name, question, answer, context"
            " FROM turns WHERE conversation = :conversation AND seq > :after"
            f" ORDER BY seq {'ASC' if oldest else 'DESC'} LIMIT :limit",
            {"conversation": conversation, "after": after, "limit": limit},
        )
        if not oldest:
            rows.reverse()
        return [
            NumberedTurn(int(seq), float(at), _turn(sid, name, question, answer, context))
            for seq, at, sid, name, question, answer, context in rows
        ]

    async def context(self, conversation: str, limit: int) -> tuple[Summary | None, list[Turn]]:
        """The conversation's running summary and its last ``limit`` turns after it, oldest
        first: what a request carries, read in one statement (not the two of ``summary`` and
        ``recent``: each read is a round trip to the database's thread or server)."""
        rows = await self.db.fetch(
            "SELECT s.text, s.upto, s.upto_at, s.turns, s.updated_at, t.seq, t.speaker_id,"
            " t.speaker_name, t.question, t.answer, t.context"
            " FROM (SELECT CAST(:conversation AS TEXT) AS conversation) AS c"
            " LEFT JOIN summaries AS s ON s.conversation = c.conversation"
            " LEFT JOIN (SELECT seq, speaker_id, speaker_name, question, answer, context"
            "  FROM turns WHERE conversation = :conversation AND seq > COALESCE("
            "   (SELECT upto FROM summaries WHERE conversation = :conversation), 0)"
            "  ORDER BY seq DESC LIMIT :limit) AS t ON true"
            " ORDER BY t.seq",
            {"conversation": conversation, "limit": max(limit, 0)},
        )
        return _summary(*rows[0][:5]), [_turn(*row[6:]) for row in rows if row[5] is not None]

    async def count(self, conversation: str, *, after: int = 0) -> int:
        """How many turns a conversation keeps (after turn ``after``)."""
        rows = await self.db.fetch(
            "SELECT COUNT(*) FROM turns WHERE conversation = :conversation AND seq > :after",
            {"conversation": conversation, "after": after},
        )
        return int(rows[0][0])

    async def reset(self, conversation: str, *, with_members: bool = False) -> int:
        """Forget a conversation's turns and with them its summary (``with_members``: and its
        members' personal ones); returns how many turns were removed."""
        where = "conversation = :chat"
        if with_members:
            where += " OR " + members_of(":chat")
        return await self.db.execute(f"DELETE FROM turns WHERE {where}", {"chat": conversation})

    async def summary(self, conversation: str) -> Summary | None:
        """The conversation's running summary, if it has one."""
        rows = await self.db.fetch(
            "SELECT text, upto, upto_at, turns, updated_at FROM summaries"
            " WHERE conversation = :conversation",
            {"conversation": conversation},
        )
        return _summary(*rows[0]) if rows else None

    async def save_summary(
        self, conversation: str, summary: Summary, replacing: Summary | None
    ) -> bool:
        """Store ``summary`` if the conversation still is as it was summarised: its summary is
        still ``replacing``, and the last turn folded in is still there (no reset since).
        Returns whether it was stored."""
        changed = await self.db.execute(
            "INSERT INTO summaries (conversation, text, upto, upto_at, turns, updated_at)"
            " SELECT CAST(:conversation AS TEXT), CAST(:text AS TEXT), CAST(:upto AS BIGINT),"
            " CAST(:upto_at AS DOUBLE PRECISION), CAST(:turns AS BIGINT),"
            " CAST(:now AS DOUBLE PRECISION)"
            " WHERE EXISTS (SELECT 1 FROM turns"
            "  WHERE conversation = :conversation AND seq = :upto AND created_at = :upto_at)"
            " AND COALESCE((SELECT upto FROM summaries WHERE conversation = :conversation), 0)"
            "  = :before"
            " ON CONFLICT (conversation) DO UPDATE SET text = excluded.text,"
            " upto = excluded.upto, upto_at = excluded.upto_at, turns = excluded.turns,"
            " updated_at = excluded.updated_at",
            {
                "conversation": conversation,
                "text": summary.text,
                "upto": summary.upto,
                "upto_at": summary.upto_at,
                "turns": summary.turns,
                "now": time.time(),
                "before": replacing.upto if replacing else 0,
            },
        )
        return changed > 0

    async def options(self, scope: str) -> ChatOptions:
        """What a chat's admins have set (defaults where nothing is)."""
        rows = await self.db.fetch(
            f"SELECT {_OPTION_COLUMNS} FROM chat_settings WHERE scope = :scope", {"scope": scope}
        )
        return next((_options_from(*row) for row in rows), DEFAULT_OPTIONS)

    async def save_options(self, scope: str, options: ChatOptions) -> None:
        await self.db.execute(
            f"INSERT INTO chat_settings (scope, {_OPTION_COLUMNS})"
            " VALUES (:scope, :persona, :model, :personal, :enabled, :web_search, :listen,"
            " :chime, :tools) ON CONFLICT (scope) DO UPDATE SET"
            " persona = excluded.persona, model = excluded.model,"
            " personal = excluded.personal, enabled = excluded.enabled,"
            " web_search = excluded.web_search, listen = excluded.listen,"
            " chime = excluded.chime, tools = excluded.tools",
            {
                "scope": scope,
                "persona": options.persona,
                "model": options.model,
                "personal": int(options.personal),
                "enabled": int(options.enabled),
                "web_search": int(options.web_search),
                "listen": int(options.listen),
                "chime": options.chime,
                "tools": None if options.tools is None else int(options.tools),
            },
        )

    # --- what the console reads -------------------------------------------------------------
    async def count_chats(self, search: str = "") -> int:
        """How many chats are known (those whose key contains ``search``)."""
        sql, params = "SELECT COUNT(*) FROM chats", {"search": search}
        if search:
            sql += " WHERE instr(scope, :search) > 0"
        rows = await self.db.fetch(sql, params)
        return int(rows[0][0])

    async def list_chats(
        self, today: str, week_start: str, *, limit: int, offset: int = 0, search: str = ""
    ) -> list[ChatListing]:
        """Chats by last activity, newest first, with their tokens and settings."""
        where = "WHERE instr(scope, :search) > 0" if search else ""
        # The page is picked first, so tokens and settings are read for its rows only.
        rows = await self.db.fetch(
            "SELECT c.scope, c.turns, c.last_at,"
            " (SELECT tokens FROM usage_daily WHERE scope = c.scope AND day = :today),"
            " (SELECT SUM(tokens) FROM usage_daily WHERE scope = c.scope AND day >= :week),"
            " s.persona, s.model, s.personal, s.enabled, s.web_search, s.listen, s.chime, s.tools"
            f" FROM (SELECT scope, turns, last_at FROM chats {where}"
            " ORDER BY last_at DESC, scope LIMIT :limit OFFSET :offset) c"
            " LEFT JOIN chat_settings s ON s.scope = c.scope"
            " ORDER BY c.last_at DESC, c.scope",
            {
                "today": today,
                "week": week_start,
                "search": search,
                "limit": limit,
                "offset": offset,
            },
        )
        return [
            ChatListing(
                str(chat),
                int(turns),
                float(last_at),
                int(today or 0),
                int(week or 0),
                _options_from(*settings),
            )
            for chat, turns, last_at, today, week, *settings in rows
        ]

    async def count_chat(self, chat: str) -> int:
        """How many turns a chat keeps, its members' own included."""
        rows = await self.db.fetch("SELECT turns FROM chats WHERE scope = :chat", {"chat": chat})
        return next((int(turns) for (turns,) in rows), 0)

    async def chat_turns(self, chat: str, limit: int) -> list[StoredTurn]:
        """A chat's last ``limit`` turns (its members' own ones included), newest first."""
        rows = await self.db.fetch(
            "SELECT conversation, speaker_id, speaker_name, question, answer, context, model,"
            " prompt_tokens, completion_tokens, created_at FROM turns"
            " WHERE COALESCE(scope, conversation) = :chat"
            " ORDER BY created_at DESC LIMIT :limit",
            {"chat": chat, "limit": limit},
        )
        return [_stored_turn(*row) for row in rows]

    async def daily_usage(self, since: str) -> list[DayUsage]:
        """Tokens per chat and day from ``since`` (``YYYY-MM-DD``) on, oldest day first."""
        rows = await self.db.fetch(
            "SELECT scope, day, tokens, turns FROM usage_daily WHERE day >= :since"
            " ORDER BY day, tokens DESC",
            {"since": since},
        )
        return [DayUsage(str(s), str(d), int(t), int(n)) for s, d, t, n in rows]

    async def tokens_by_day(self, since: str) -> dict[str, int]:
        """All chats' tokens per local day from ``since`` on."""
        rows = await self.db.fetch(
            "SELECT day, SUM(tokens) FROM usage_daily WHERE day >= :since GROUP BY day",
            {"since": since},
        )
        return {str(day): int(tokens) for day, tokens in rows}

    async def top_chats(self, since: str, limit: int) -> list[tuple[str, int]]:
        """The chats that spent the most tokens from ``since`` on: ``(chat, tokens)``."""
        rows = await self.db.fetch(
            "SELECT scope, SUM(tokens) AS spent FROM usage_daily WHERE day >= :since"
            " GROUP BY scope ORDER BY spent DESC, scope LIMIT :limit",
            {"since": since, "limit": limit},
        )
        return [(str(chat), int(tokens)) for chat, tokens in rows]

    async def tokens_on(self, scope: str, day: str) -> int:
        """Tokens a chat spent on a local day (``YYYY-MM-DD``)."""
        rows = await self.db.fetch(
            "SELECT tokens FROM usage_daily WHERE scope = :scope AND day = :day",
            {"scope": scope, "day": day},
        )
        return next((int(tokens) for (tokens,) in rows), 0)

    async def usage_since(self, day: str, scope: str | None = None) -> list[tuple[str, str, int]]:
        """``(scope, day, tokens)`` from ``day`` on, for one chat or all, newest day first."""
        sql = "SELECT scope, day, tokens FROM usage_daily WHERE day >= :day"
        if scope is not None:
            sql += " AND scope = :scope"
        rows = await self.db.fetch(
            sql + " ORDER BY day DESC, tokens DESC", {"day": day, "scope": scope}
        )
        return [(str(s), str(d), int(t)) for s, d, t in rows]


_OPTION_COLUMNS = "persona, model, personal, enabled, web_search, listen, chime, tools"


def _options_from(
    persona: str | None,
    model: str | None,
    personal: int | None,
    enabled: int | None,
    web_search: int | None,
    listen: int | None,
    chime: int | None,
    tools: int | None,
) -> ChatOptions:
    """A chat's settings from a ``chat_settings`` row (all None: the defaults)."""
    if enabled is None:
        return DEFAULT_OPTIONS
    return ChatOptions(
        persona,
        model,
        bool(personal),
        bool(enabled),
        bool(web_search),
        bool(listen),
        int(chime or 0),
        None if tools is None else bool(tools),
    )


def _summary(
    text: str | None, upto: int, upto_at: float, turns: int, updated_at: float
) -> Summary | None:
    """A ``summaries`` row's summary (None: a row of a join that found none)."""
    if text is None:
        return None
    return Summary(str(text), int(upto), float(upto_at), int(turns), float(updated_at))


def _turn(
    speaker_id: str | None,
    speaker_name: str | None,
    question: str,
    answer: str,
    context: str | None,
) -> Turn:
    speaker = Speaker(speaker_id, speaker_name or speaker_id) if speaker_id is not None else None
    return Turn(question, answer, speaker, context or "")


def _stored_turn(
    conversation: str,
    speaker_id: str | None,
    speaker_name: str | None,
    question: str,
    answer: str,
    context: str | None,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    created_at: float,
) -> StoredTurn:
    return StoredTurn(
        conversation,
        _turn(speaker_id, speaker_name, question, answer, context),
        model,
        prompt_tokens,
        completion_tokens,
        created_at,
    )
