"""``ContextStore``: conversation turns in SQLite (aiosqlite), one row per whole turn."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from ..glm.completion import Usage
from .models import ChatListing, ChatOptions, DayUsage, Speaker, StoredTurn, Turn

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]


async def _create_turns(db: aiosqlite.Connection) -> None:
    # Clustered by conversation: a conversation's turns share a few pages however many other
    # conversations are interleaved with it, so reading the last 20 stays cheap at 1M turns.
    await db.execute(
        """
        CREATE TABLE turns (
            conversation TEXT NOT NULL,
            seq INTEGER NOT NULL,
            speaker_id TEXT,
            speaker_name TEXT,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            PRIMARY KEY (conversation, seq)
        ) WITHOUT ROWID
        """
    )


async def _add_settings_and_usage(db: aiosqlite.Connection) -> None:
    # Per chat (a group or a private chat): what its admins set with /glm commands.
    await db.execute(
        """
        CREATE TABLE chat_settings (
            scope TEXT PRIMARY KEY,
            persona TEXT,
            model TEXT,
            personal INTEGER NOT NULL DEFAULT 0,
            enabled INTEGER NOT NULL DEFAULT 1,
            web_search INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    # Tokens per chat and local day, kept by a trigger: a turn and its usage are one statement.
    await db.execute("ALTER TABLE turns ADD COLUMN scope TEXT")
    await db.execute(
        """
        CREATE TABLE usage_daily (
            scope TEXT NOT NULL,
            day TEXT NOT NULL,
            tokens INTEGER NOT NULL DEFAULT 0,
            turns INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, day)
        ) WITHOUT ROWID
        """
    )
    await db.execute(
        """
        CREATE TRIGGER turns_count_usage AFTER INSERT ON turns
        BEGIN
            INSERT INTO usage_daily (scope, day, tokens, turns)
            VALUES (
                COALESCE(NEW.scope, NEW.conversation),
                date(NEW.created_at, 'unixepoch', 'localtime'),
                NEW.prompt_tokens + NEW.completion_tokens,
                1
            )
            ON CONFLICT (scope, day) DO UPDATE
            SET tokens = tokens + excluded.tokens, turns = turns + 1;
        END
        """
    )
    await db.execute(
        "INSERT INTO usage_daily (scope, day, tokens, turns)"
        " SELECT conversation, date(created_at, 'unixepoch', 'localtime'),"
        " SUM(prompt_tokens + completion_tokens), COUNT(*) FROM turns GROUP BY 1, 2"
    )


async def _add_chat_index(db: aiosqlite.Connection) -> None:
    # One row per chat, kept by triggers, so that the console lists 10k chats by their last
    # activity without counting a million turns; and usage by day without scanning every chat.
    await db.execute(
        """
        CREATE TABLE chats (
            scope TEXT PRIMARY KEY,
            turns INTEGER NOT NULL DEFAULT 0,
            last_at REAL NOT NULL DEFAULT 0
        )
        """
    )
    await db.execute("CREATE INDEX chats_by_recent ON chats (last_at DESC, scope)")
    await db.execute("CREATE INDEX usage_daily_by_day ON usage_daily (day, scope, tokens, turns)")
    # A chat's latest turns, its members' own included, without sorting all of them.
    await db.execute(
        "CREATE INDEX turns_by_chat ON turns (COALESCE(scope, conversation), created_at)"
    )
    await db.execute(
        """
        CREATE TRIGGER turns_count_chat AFTER INSERT ON turns
        BEGIN
            INSERT INTO chats (scope, turns, last_at)
            VALUES (COALESCE(NEW.scope, NEW.conversation), 1, NEW.created_at)
            ON CONFLICT (scope) DO UPDATE
            SET turns = turns + 1, last_at = MAX(last_at, excluded.last_at);
        END
        """
    )
    await db.execute(
        """
        CREATE TRIGGER turns_uncount_chat AFTER DELETE ON turns
        BEGIN
            UPDATE chats SET turns = turns - 1
            WHERE scope = COALESCE(OLD.scope, OLD.conversation);
        END
        """
    )
    await db.execute(
        """
        CREATE TRIGGER settings_list_chat AFTER INSERT ON chat_settings
        BEGIN
            INSERT INTO chats (scope) VALUES (NEW.scope) ON CONFLICT (scope) DO NOTHING;
        END
        """
    )
    await db.execute(
        "INSERT INTO chats (scope, turns, last_at)"
        " SELECT COALESCE(scope, conversation), COUNT(*), MAX(created_at) FROM turns GROUP BY 1"
    )
    await db.execute(
        "INSERT INTO chats (scope) SELECT scope FROM chat_settings WHERE true"
        " ON CONFLICT (scope) DO NOTHING"
    )


# Append only: the schema's version is the number of migrations applied (PRAGMA user_version).
MIGRATIONS: list[Migration] = [_create_turns, _add_settings_and_usage, _add_chat_index]


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
    ) -> None:
        """Store a whole turn, and count its tokens for ``scope`` (default: the conversation):
        one statement, so one atomic write."""
        usage = usage or Usage()
        speaker = turn.speaker
        await self._db.execute(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " model, prompt_tokens, completion_tokens, created_at, scope)"
            " VALUES (:conversation,"
            " (SELECT IFNULL(MAX(seq), 0) + 1 FROM turns WHERE conversation = :conversation),"
            " :speaker_id, :speaker_name, :question, :answer, :model, :prompt_tokens,"
            " :completion_tokens, :created_at, :scope)",
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

    async def recent(self, conversation: str, limit: int) -> list[Turn]:
        """The last ``limit`` turns of a conversation, oldest first."""
        if limit <= 0:
            return []
        rows = await self._db.execute_fetchall(
            "SELECT speaker_id, speaker_name, question, answer FROM turns"
            " WHERE conversation = ? ORDER BY seq DESC LIMIT ?",
            (conversation, limit),
        )
        return [
            Turn(question, answer, Speaker(sid, name or sid) if sid is not None else None)
            for sid, name, question, answer in reversed(list(rows))
        ]

    async def count(self, conversation: str) -> int:
        """How many turns a conversation keeps."""
        rows = await self._db.execute_fetchall(
            "SELECT COUNT(*) FROM turns WHERE conversation = ?", (conversation,)
        )
        return int(next(iter(rows))[0])

    async def reset(self, conversation: str, *, with_members: bool = False) -> int:
        """Forget a conversation's turns (``with_members``: and its members' personal ones);
        returns how many were removed."""
        sql = "DELETE FROM turns WHERE conversation = :chat"
        if with_members:
            sql += " OR (conversation > :chat || ':' AND conversation < :chat || ';')"
        cursor = await self._db.execute(sql, {"chat": conversation})
        return cursor.rowcount

    async def options(self, scope: str) -> ChatOptions:
        """What a chat's admins have set (defaults where nothing is)."""
        rows = await self._db.execute_fetchall(
            "SELECT persona, model, personal, enabled, web_search FROM chat_settings"
            " WHERE scope = ?",
            (scope,),
        )
        for row in rows:
            return _options_from(*row)
        return ChatOptions()

    async def save_options(self, scope: str, options: ChatOptions) -> None:
        await self._db.execute(
            "INSERT INTO chat_settings (scope, persona, model, personal, enabled, web_search)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET"
            " persona = excluded.persona, model = excluded.model,"
            " personal = excluded.personal, enabled = excluded.enabled,"
            " web_search = excluded.web_search",
            (
                scope,
                options.persona,
                options.model,
                options.personal,
                options.enabled,
                options.web_search,
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
            " s.persona, s.model, s.personal, s.enabled, s.web_search"
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
            "SELECT conversation, speaker_id, speaker_name, question, answer, model,"
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


def _options_from(
    persona: str | None,
    model: str | None,
    personal: int | None,
    enabled: int | None,
    web_search: int | None,
) -> ChatOptions:
    """A chat's settings from a ``chat_settings`` row (all None: the defaults)."""
    if enabled is None:
        return ChatOptions()
    return ChatOptions(persona, model, bool(personal), bool(enabled), bool(web_search))


def _stored_turn(
    conversation: str,
    speaker_id: str | None,
    speaker_name: str | None,
    question: str,
    answer: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    created_at: float,
) -> StoredTurn:
    speaker = Speaker(speaker_id, speaker_name or speaker_id) if speaker_id is not None else None
    return StoredTurn(
        conversation,
        Turn(question, answer, speaker),
        model,
        prompt_tokens,
        completion_tokens,
        created_at,
    )
