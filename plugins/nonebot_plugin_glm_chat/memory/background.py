"""``BackgroundLog``: a group's recent messages that were not addressed to the bot.

A few rows per group (the newest ``keep``), none older than the age the caller gives, and a
mark per conversation saying how far its questions have already carried them. Deleted text is
overwritten (SQLite opens with ``secure_delete``), and ``forget`` also empties SQLite's WAL, so a
group that stops the bot reading along leaves none of its messages in the files. PostgreSQL keeps
old row versions until VACUUM reclaims them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .db import Database
from .models import Heard, Speaker

ROWS_PER_INSERT = 100  # 7 parameters a row stays far below SQLite's variable limit
_NAMES = ("chat", "seq", "message_id", "speaker_id", "speaker_name", "text", "created_at")
_COLUMNS = ", ".join(_NAMES)


def _placeholders(index: int) -> str:
    """``(:chat0, :seq0, ...)``: the parameters of the ``index``-th row of an insert."""
    return "(" + ", ".join(f":{name}{index}" for name in _NAMES) + ")"


def members_of(chat: str) -> str:
    """SQL matching the members' own conversations (``group:1:42``) of the chat that the SQL
    expression ``chat`` names (a parameter), by key range."""
    chat = f"CAST({chat} AS TEXT)"
    return f"(conversation > {chat} || ':' AND conversation < {chat} || ';')"


class BackgroundLog:
    """Background rows in the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, rows: Sequence[tuple[str, Heard]], keep: int) -> None:
        """Keep ``(chat, heard)`` rows, then only the newest ``keep`` of each chat among them."""
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            values = ", ".join(_placeholders(index) for index in range(len(chunk)))
            params = {
                f"{column}{index}": value
                for index, (chat, heard) in enumerate(chunk)
                for column, value in zip(_NAMES, _row(chat, heard), strict=True)
            }
            await self._db.execute(
                f"INSERT INTO background ({_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING",
                params,
            )
        chats = sorted({chat for chat, _ in rows})
        for start in range(0, len(chats), ROWS_PER_INSERT):
            await self._prune(chats[start : start + ROWS_PER_INSERT], keep)

    async def _prune(self, chats: Sequence[str], keep: int) -> None:
        marks = ", ".join(f":chat{index}" for index in range(len(chats)))
        params = {f"chat{index}": chat for index, chat in enumerate(chats)}
        await self._trim(f"WHERE chat IN ({marks})", {**params, "keep": keep})

    async def trim(self, keep: int) -> int:
        """Keep the newest ``keep`` rows of every chat: a ``kill -9`` between a write and its
        pruning, or a bound lowered since, leaves more. Returns how many were deleted."""
        return await self._trim("", {"keep": keep})

    async def _trim(self, where: str, params: Mapping[str, object]) -> int:
        return await self._db.execute(
            "DELETE FROM background WHERE (chat, seq) IN ("
            " SELECT chat, seq FROM ("
            "  SELECT chat, seq, ROW_NUMBER() OVER (PARTITION BY chat ORDER BY seq DESC) AS n"
            f"  FROM background {where}"
            " ) AS ranked WHERE n > :keep)",
            params,
        )

    async def since(
        self, chat: str, conversation: str, until: int, *, keep: int, oldest_at: float
    ) -> list[Heard]:
        """``chat``'s background that ``conversation`` has not carried yet and that came
        before ``until``: the newest ``keep`` rows not older than ``oldest_at``, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM background"
            " WHERE chat = :chat AND seq < :until AND created_at >= :oldest"
            " AND seq > (SELECT COALESCE(MAX(upto), 0) FROM background_marks"
            "  WHERE conversation IN (:conversation, CAST(:chat AS TEXT) || ':*'))"
            " ORDER BY seq DESC LIMIT :keep",
            {
                "chat": chat,
                "conversation": conversation,
                "until": until,
                "oldest": oldest_at,
                "keep": keep,
            },
        )
        return [_heard(*row) for row in reversed(rows)]

    async def find(self, chat: str, message_id: str) -> Heard | None:
        """The kept message of ``chat`` with this QQ message id, if it is still kept."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM background WHERE chat = :chat AND message_id = :message_id"
            " LIMIT 1",
            {"chat": chat, "message_id": message_id},
        )
        return next((_heard(*row) for row in rows), None)

    async def count(self, chat: str, oldest_at: float) -> int:
        """How many messages of ``chat`` are kept (not older than ``oldest_at``)."""
        rows = await self._db.fetch(
            "SELECT COUNT(*) FROM background WHERE chat = :chat AND created_at >= :oldest",
            {"chat": chat, "oldest": oldest_at},
        )
        return int(rows[0][0])

    async def mark(self, conversation: str, upto: int, *, with_members: bool = False) -> None:
        """``conversation`` (``with_members``: and its members') has carried everything before
        ``upto``: a reset, so that what was said before it is not sent again."""
        await self._db.execute(
            "INSERT INTO background_marks (conversation, upto) VALUES (:conversation, :upto)"
            " ON CONFLICT (conversation) DO UPDATE SET upto = CASE"
            " WHEN excluded.upto > background_marks.upto THEN excluded.upto"
            " ELSE background_marks.upto END",
            {"conversation": conversation, "upto": upto - 1},
        )
        if with_members:  # a floor for every member, those without a mark of their own too
            await self.mark(f"{conversation}:*", upto)

    async def forget(self, chat: str) -> int:
        """Delete ``chat``'s background, the background its stored turns carried and the
        summaries written from them, from the database (and SQLite's WAL); returns how many
        kept messages were deleted."""
        params = {"chat": chat}
        removed = await self._db.execute("DELETE FROM background WHERE chat = :chat", params)
        await self._db.execute(
            "UPDATE turns SET context = NULL"
            " WHERE COALESCE(scope, conversation) = :chat AND context IS NOT NULL",
            params,
        )
        await self._db.execute(
            f"DELETE FROM summaries WHERE conversation = :chat OR {members_of(':chat')}", params
        )
        await self.empty_wal()
        return removed

    async def empty_wal(self) -> None:
        """SQLite: copy the WAL into the database and truncate it, old page images with it
        (PostgreSQL: nothing to do)."""
        await self._db.purge_deleted()

    async def last_seq(self) -> int:
        """The highest number kept: of a message, or of a mark."""
        rows = await self._db.fetch(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM background),"
            " (SELECT COALESCE(MAX(upto), 0) FROM background_marks)"
        )
        return int(max(rows[0]))

    async def sweep(self, oldest_at: float) -> int:
        """Delete every chat's background older than ``oldest_at``."""
        return await self._db.execute(
            "DELETE FROM background WHERE created_at < :oldest", {"oldest": oldest_at}
        )


def _row(chat: str, heard: Heard) -> tuple[object, ...]:
    speaker = heard.speaker
    return (
        chat,
        heard.seq,
        heard.message_id,
        speaker.user_id,
        speaker.name,
        heard.text,
        heard.at,
    )


def _heard(
    chat: str,
    seq: int,
    message_id: str,
    speaker_id: str,
    speaker_name: str,
    text: str,
    created_at: float,
) -> Heard:
    return Heard(int(seq), Speaker(speaker_id, speaker_name), text, message_id, created_at)
