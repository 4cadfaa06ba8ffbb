"""The PostgreSQL database's schema: the tables, indexes and triggers of SQLite's last version
(``schema``), as a list of migrations applied in order at open, under an advisory lock.

Keys are compared byte by byte (``COLLATE "C"``), as SQLite does: a member's conversation
(``group:1:42``) is found by key range, which a language's collation would break.
"""

from __future__ import annotations

from .db import Database
from .schema import Migration

TABLES = (
    """
    CREATE TABLE turns (
        conversation TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        speaker_id TEXT,
        speaker_name TEXT,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        prompt_tokens BIGINT NOT NULL DEFAULT 0,
        completion_tokens BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        scope TEXT COLLATE "C",
        context TEXT,
        heard BIGINT,
        PRIMARY KEY (conversation, seq)
    )
    """,
    """
    CREATE TABLE chat_settings (
        scope TEXT COLLATE "C" PRIMARY KEY,
        persona TEXT,
        model TEXT,
        personal INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        web_search INTEGER NOT NULL DEFAULT 0,
        listen INTEGER NOT NULL DEFAULT 1,
        chime INTEGER NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE usage_daily (
        scope TEXT COLLATE "C" NOT NULL,
        day TEXT COLLATE "C" NOT NULL,
        tokens BIGINT NOT NULL DEFAULT 0,
        turns BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, day)
    )
    """,
    """
    CREATE TABLE chats (
        scope TEXT COLLATE "C" PRIMARY KEY,
        turns BIGINT NOT NULL DEFAULT 0,
        last_at DOUBLE PRECISION NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE background (
        chat TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL DEFAULT '',
        speaker_id TEXT NOT NULL,
        speaker_name TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (chat, seq)
    )
    """,
    """
    CREATE TABLE background_marks (
        conversation TEXT COLLATE "C" PRIMARY KEY,
        upto BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE summaries (
        conversation TEXT COLLATE "C" PRIMARY KEY,
        text TEXT NOT NULL,
        upto BIGINT NOT NULL,
        upto_at DOUBLE PRECISION NOT NULL,
        turns BIGINT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
)

INDEXES = (
    "CREATE INDEX chats_by_recent ON chats (last_at DESC, scope)",
    "CREATE INDEX usage_daily_by_day ON usage_daily (day, scope, tokens, turns)",
    "CREATE INDEX turns_by_chat ON turns ((COALESCE(scope, conversation)), created_at)",
    "CREATE INDEX background_by_age ON background (created_at)",
)

# What SQLite's triggers do, in PL/pgSQL. A turn's local day is the session's: the backend sets
# the session's time zone to the bot's.
FUNCTIONS = (
    """
    CREATE FUNCTION glm_turn_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Tokens per chat and local day: a turn and its usage are one statement.
        INSERT INTO usage_daily AS u (scope, day, tokens, turns)
        VALUES (
            COALESCE(NEW.scope, NEW.conversation),
            to_char(to_timestamp(NEW.created_at), 'YYYY-MM-DD'),
            NEW.prompt_tokens + NEW.completion_tokens,
            1
        )
        ON CONFLICT (scope, day) DO UPDATE
        SET tokens = u.tokens + excluded.tokens, turns = u.turns + 1;
        -- One row per chat, so the console lists chats without counting turns.
        INSERT INTO chats AS c (scope, turns, last_at)
        VALUES (COALESCE(NEW.scope, NEW.conversation), 1, NEW.created_at)
        ON CONFLICT (scope) DO UPDATE
        SET turns = c.turns + 1, last_at = GREATEST(c.last_at, excluded.last_at);
        -- The background before the question has now been carried.
        IF NEW.heard IS NOT NULL THEN
            INSERT INTO background_marks AS m (conversation, upto)
            VALUES (NEW.conversation, NEW.heard - 1)
            ON CONFLICT (conversation) DO UPDATE SET upto = GREATEST(m.upto, excluded.upto);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION glm_turn_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE chats SET turns = turns - 1 WHERE scope = COALESCE(OLD.scope, OLD.conversation);
        -- Forgetting a conversation's turns forgets its summary in the same statement.
        DELETE FROM summaries WHERE conversation = OLD.conversation;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION glm_settings_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO chats (scope) VALUES (NEW.scope) ON CONFLICT (scope) DO NOTHING;
        RETURN NULL;
    END
    $$
    """,
    # SQLite's instr(), so that the store's search reads the same on both.
    """
    CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
    LANGUAGE sql IMMUTABLE STRICT AS 'SELECT strpos(haystack, needle)'
    """,
)

TRIGGERS = (
    "CREATE TRIGGER turns_added AFTER INSERT ON turns"
    " FOR EACH ROW EXECUTE FUNCTION glm_turn_added()",
    "CREATE TRIGGER turns_removed AFTER DELETE ON turns"
    " FOR EACH ROW EXECUTE FUNCTION glm_turn_removed()",
    "CREATE TRIGGER settings_added AFTER INSERT ON chat_settings"
    " FOR EACH ROW EXECUTE FUNCTION glm_settings_added()",
)

# The tables whose triggers keep counters; a copy turns them off while it writes the counters.
COUNTED = ("turns", "chat_settings")


async def _create_all(db: Database) -> None:
    for statement in (*TABLES, *INDEXES, *FUNCTIONS, *TRIGGERS):
        await db.execute(statement)


async def _add_tools_setting(db: Database) -> None:
    # /glm tools on|off per chat; NULL: the chat follows GLM_TOOLS.
    await db.execute("ALTER TABLE chat_settings ADD COLUMN tools INTEGER")


# Append only: the schema's version is the number of migrations applied (table schema_version).
MIGRATIONS: list[Migration] = [_create_all, _add_tools_setting]
