"""``ContextStore``: conversation turns in SQLite (aiosqlite), one row per whole turn."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import time
from pathlib import Path

import aiosqlite

from ..glm.completion import Usage
from .background import BackgroundLog, members_of
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
from .schema import MIGRATIONS

# SQLite's side files, created beside the database with the database file's mode.
SIDE_FILES = ("-wal", "-shm", "-journal")


class StoreOpenError(RuntimeError):
    """The database could not be created or opened; the message says which file and why."""


class SchemaTooNewError(StoreOpenError):
    """The database was written by a newer glm-chat."""


def _private_file(path: Path) -> None:
    """Create the folder and the file, readable by its owner only; tighten older files."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:  # a file has the folder's name
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), error.filename
        ) from None
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(mode & 0o700)


def _open_error(path: Path, error: OSError | sqlite3.Error) -> StoreOpenError:
    """``cannot create or open PATH (REASON)``, REASON in the OS's (or SQLite's) words."""
    reason = str(error)
    if isinstance(error, OSError) and error.strerror:
        reason = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return StoreOpenError(f"cannot create or open {path} ({reason})")


class ContextStore:
    """Reads and writes conversation context; open with ``await ContextStore.open(path)``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.background = BackgroundLog(db)

    @classmethod
    async def open(cls, path: Path | str) -> ContextStore:
        """Open (creating the folder, and the file with mode 0600) and bring the schema up to
        date; raises ``StoreOpenError`` saying why when the file cannot be used."""
        path = Path(path)
        try:
            _private_file(path)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise _open_error(path, error) from error
        try:
            for pragma in (
                "journal_mode = WAL",
                "synchronous = NORMAL",
                "busy_timeout = 5000",
                "foreign_keys = ON",
                "secure_delete = ON",  # deleted text is overwritten, not left in free pages
            ):
                await db.execute(f"PRAGMA {pragma}")
            store = cls(db)
            await store._migrate()
        except BaseException as error:
            await db.close()
            if isinstance(error, sqlite3.DatabaseError):  # e.g. "file is not a database"
                raise _open_error(path, error) from error
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.schema_version()
        if current > len(MIGRATIONS):
            raise SchemaTooNewError(
                f"database schema v{current} is newer than this glm-chat (v{len(MIGRATIONS)})"
            )
        # Each step whole or not at all; this runs at open, before anything else uses the file.
        for version, migration in enumerate(MIGRATIONS[current:], start=current + 1):
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                await migration(self._db)
                await self._db.execute(f"PRAGMA user_version = {version}")
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

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
        await self._db.execute(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " model, prompt_tokens, completion_tokens, created_at, scope, context, heard)"
            " VALUES (:conversation,"
            " (SELECT IFNULL(MAX(seq), 0) + 1 FROM turns WHERE conversation = :conversation),"
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
        )

    async def count_usage(self, scope: str, usage: Usage) -> None:
        """Count the tokens of an answer that was paid for but not kept as a turn (QQ refused
        it), so that daily limits and ``/glm usage`` see every token spent."""
        await self._db.execute(
            "INSERT INTO usage_daily (scope, day, tokens, turns)"
            " VALUES (:scope, date('now', 'localtime'), :tokens, 0)"
            " ON CONFLICT (scope, day) DO UPDATE SET tokens = tokens + excluded.tokens",
            {"scope": scope, "tokens": usage.prompt_tokens + usage.completion_tokens},
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
        rows = await self._db.execute_fetchall(
            "SELECT seq, created_at, speaker_id, speaker_name, question, answer, context"
            " FROM turns WHERE conversation = ? AND seq > ?"
            f" ORDER BY seq {'ASC' if oldest else 'DESC'} LIMIT ?",
            (conversation, after, limit),
        )
        rows = list(rows) if oldest else list(reversed(list(rows)))
        return [
            NumberedTurn(int(seq), float(at), _turn(sid, name, question, answer, context))
            for seq, at, sid, name, question, answer, context in rows
        ]

    async def count(self, conversation: str, *, after: int = 0) -> int:
        """How many turns a conversation keeps (after turn ``after``)."""
        rows = await self._db.execute_fetchall(
            "SELECT COUNT(*) FROM turns WHERE conversation = ? AND seq > ?",
            (conversation, after),
        )
        return int(next(iter(rows))[0])

    async def reset(self, conversation: str, *, with_members: bool = False) -> int:
        """Forget a conversation's turns and with them its summary (``with_members``: and its
        members' personal ones); returns how many turns were removed."""
        where = "conversation = :chat"
        if with_members:
            where += " OR " + members_of(":chat")
        cursor = await self._db.execute(f"DELETE FROM turns WHERE {where}", {"chat": conversation})
        return cursor.rowcount

    async def summary(self, conversation: str) -> Summary | None:
        """The conversation's running summary, if it has one."""
        rows = await self._db.execute_fetchall(
            "SELECT text, upto, upto_at, turns, updated_at FROM summaries WHERE conversation = ?",
            (conversation,),
        )
        return next(
            (Summary(str(t), int(u), float(a), int(n), float(w)) for t, u, a, n, w in rows), None
        )

    async def save_summary(
        self, conversation: str, summary: Summary, replacing: Summary | None
    ) -> bool:
        """Store ``summary`` if the conversation still is as it was summarised: its summary is
        still ``replacing``, and the last turn folded in is still there (no reset since).
        Returns whether it was stored."""
        cursor = await self._db.execute(
            "INSERT INTO summaries (conversation, text, upto, upto_at, turns, updated_at)"
            " SELECT :conversation, :text, :upto, :upto_at, :turns, :now"
            " WHERE EXISTS (SELECT 1 FROM turns"
            "  WHERE conversation = :conversation AND seq = :upto AND created_at = :upto_at)"
            " AND IFNULL((SELECT upto FROM summaries WHERE conversation = :conversation), 0)"
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
        return cursor.rowcount > 0

    async def options(self, scope: str) -> ChatOptions:
        """What a chat's admins have set (defaults where nothing is)."""
        rows = await self._db.execute_fetchall(
            f"SELECT {_OPTION_COLUMNS} FROM chat_settings WHERE scope = ?", (scope,)
        )
        return next((_options_from(*row) for row in rows), DEFAULT_OPTIONS)

    async def save_options(self, scope: str, options: ChatOptions) -> None:
        await self._db.execute(
            f"INSERT INTO chat_settings (scope, {_OPTION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET"
            " persona = excluded.persona, model = excluded.model,"
            " personal = excluded.personal, enabled = excluded.enabled,"
            " web_search = excluded.web_search, listen = excluded.listen,"
            " chime = excluded.chime",
            (
                scope,
                options.persona,
                options.model,
                options.personal,
                options.enabled,
                options.web_search,
                options.listen,
                options.chime,
            ),
        )

    # --- what the console reads -------------------------------------------------------------
    async def count_chats(self, search: str = "") -> int:
        """How many chats are known (those whose key contains ``search``)."""
        sql, params = "SELECT COUNT(*) FROM chats", {"search": search}
        if search:
            sql += " WHERE instr(scope, :search) > 0"
        rows = await self._db.execute_fetchall(sql, params)
        return int(next(iter(rows))[0])

    async def list_chats(
        self, today: str, week_start: str, *, limit: int, offset: int = 0, search: str = ""
    ) -> list[ChatListing]:
        """Chats by last activity, newest first, with their tokens and settings."""
        where = "WHERE instr(scope, :search) > 0" if search else ""
        # The page is picked first, so tokens and settings are read for its rows only.
        rows = await self._db.execute_fetchall(
            "SELECT c.scope, c.turns, c.last_at,"
            " (SELECT tokens FROM usage_daily WHERE scope = c.scope AND day = :today),"
            " (SELECT SUM(tokens) FROM usage_daily WHERE scope = c.scope AND day >= :week),"
            " s.persona, s.model, s.personal, s.enabled, s.web_search, s.listen, s.chime"
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
        rows = await self._db.execute_fetchall(
            "SELECT turns FROM chats WHERE scope = :chat", {"chat": chat}
        )
        return next((int(turns) for (turns,) in rows), 0)

    async def chat_turns(self, chat: str, limit: int) -> list[StoredTurn]:
        """A chat's last ``limit`` turns (its members' own ones included), newest first."""
        rows = await self._db.execute_fetchall(
            "SELECT conversation, speaker_id, speaker_name, question, answer, context, model,"
            " prompt_tokens, completion_tokens, created_at FROM turns"
            " WHERE COALESCE(scope, conversation) = :chat"
            " ORDER BY created_at DESC LIMIT :limit",
            {"chat": chat, "limit": limit},
        )
        return [_stored_turn(*row) for row in rows]

    async def daily_usage(self, since: str) -> list[DayUsage]:
        """Tokens per chat and day from ``since`` (``YYYY-MM-DD``) on, oldest day first."""
        rows = await self._db.execute_fetchall(
            "SELECT scope, day, tokens, turns FROM usage_daily WHERE day >= :since"
            " ORDER BY day, tokens DESC",
            {"since": since},
        )
        return [DayUsage(str(s), str(d), int(t), int(n)) for s, d, t, n in rows]

    async def tokens_by_day(self, since: str) -> dict[str, int]:
        """All chats' tokens per local day from ``since`` on."""
        rows = await self._db.execute_fetchall(
            "SELECT day, SUM(tokens) FROM usage_daily WHERE day >= :since GROUP BY day",
            {"since": since},
        )
        return {str(day): int(tokens) for day, tokens in rows}

    async def top_chats(self, since: str, limit: int) -> list[tuple[str, int]]:
        """The chats that spent the most tokens from ``since`` on: ``(chat, tokens)``."""
        rows = await self._db.execute_fetchall(
            "SELECT scope, SUM(tokens) AS spent FROM usage_daily WHERE day >= :since"
            " GROUP BY scope ORDER BY spent DESC, scope LIMIT :limit",
            {"since": since, "limit": limit},
        )
        return [(str(chat), int(tokens)) for chat, tokens in rows]

    async def tokens_on(self, scope: str, day: str) -> int:
        """Tokens a chat spent on a local day (``YYYY-MM-DD``)."""
        rows = await self._db.execute_fetchall(
            "SELECT tokens FROM usage_daily WHERE scope = ? AND day = ?", (scope, day)
        )
        return next((int(tokens) for (tokens,) in rows), 0)

    async def usage_since(self, day: str, scope: str | None = None) -> list[tuple[str, str, int]]:
        """``(scope, day, tokens)`` from ``day`` on, for one chat or all, newest day first."""
        sql = "SELECT scope, day, tokens FROM usage_daily WHERE day >= ?"
        params: tuple[str, ...] = (day,)
        if scope is not None:
            sql += " AND scope = ?"
            params += (scope,)
        rows = await self._db.execute_fetchall(sql + " ORDER BY day DESC, tokens DESC", params)
        return [(str(s), str(d), int(t)) for s, d, t in rows]


_OPTION_COLUMNS = "persona, model, personal, enabled, web_search, listen, chime"


def _options_from(
    persona: str | None,
    model: str | None,
    personal: int | None,
    enabled: int | None,
    web_search: int | None,
    listen: int | None,
    chime: int | None,
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
    )


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
