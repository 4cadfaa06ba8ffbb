"""The SQLite database's schema, as a list of migrations applied in order at open
(``schema_postgres`` is PostgreSQL's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .db import Database

Migration = Callable[[Database], Awaitable[None]]


async def _create_turns(db: Database) -> None:
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


async def _add_settings_and_usage(db: Database) -> None:
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


async def _add_chat_index(db: Database) -> None:
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


async def _add_group_awareness(db: Database) -> None:
    # Reading along and unprompted remarks, per chat.
    await db.execute("ALTER TABLE chat_settings ADD COLUMN listen INTEGER NOT NULL DEFAULT 1")
    await db.execute("ALTER TABLE chat_settings ADD COLUMN chime INTEGER NOT NULL DEFAULT 0")
    # What went with a question (background, a quote), and how far the group's background had
    # been heard when it was asked.
    await db.execute("ALTER TABLE turns ADD COLUMN context TEXT")
    await db.execute("ALTER TABLE turns ADD COLUMN heard INTEGER")
    # A group's recent messages not addressed to the bot: a few per group, none old.
    await db.execute(
        """
        CREATE TABLE background (
            chat TEXT NOT NULL,
            seq INTEGER NOT NULL,
            message_id TEXT NOT NULL DEFAULT '',
            speaker_id TEXT NOT NULL,
            speaker_name TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (chat, seq)
        ) WITHOUT ROWID
        """
    )
    await db.execute("CREATE INDEX background_by_age ON background (created_at)")
    # Per conversation: background up to this seq has gone with a question (or was reset).
    await db.execute(
        "CREATE TABLE background_marks (conversation TEXT PRIMARY KEY, upto INTEGER NOT NULL)"
    )
    # A stored turn moves its conversation's mark in the same statement (``heard`` is the
    # question's own number: the background before it was carried).
    await db.execute(
        """
        CREATE TRIGGER turns_mark_heard AFTER INSERT ON turns WHEN NEW.heard IS NOT NULL
        BEGIN
            INSERT INTO background_marks (conversation, upto)
            VALUES (NEW.conversation, NEW.heard - 1)
            ON CONFLICT (conversation) DO UPDATE SET upto = MAX(upto, excluded.upto);
        END
        """
    )
    await db.execute(
        """
        CREATE TABLE summaries (
            conversation TEXT PRIMARY KEY,
            text TEXT NOT NULL,
            upto INTEGER NOT NULL,
            upto_at REAL NOT NULL,
            turns INTEGER NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    # Forgetting a conversation's turns forgets its summary in the same statement.
    await db.execute(
        """
        CREATE TRIGGER turns_forget_summary AFTER DELETE ON turns
        BEGIN
            DELETE FROM summaries WHERE conversation = OLD.conversation;
        END
        """
    )


async def _add_tools_setting(db: Database) -> None:
    # /glm tools on|off per chat; NULL: the chat follows GLM_TOOLS.
    await db.execute("ALTER TABLE chat_settings ADD COLUMN tools INTEGER")


# Append only: the schema's version is the number of migrations applied (PRAGMA user_version).
MIGRATIONS: list[Migration] = [
    _create_turns,
    _add_settings_and_usage,
    _add_chat_index,
    _add_group_awareness,
    _add_tools_setting,
]
