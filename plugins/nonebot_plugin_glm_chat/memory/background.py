"""``BackgroundLog``: a group's recent messages that were not addressed to the bot.

A few rows per group (the newest ``keep``), none older than the age the caller gives, and a
mark per conversation saying how far its questions have already carried them. Deleted text is
overwritten (the store opens with ``secure_delete``), and ``forget`` also empties the WAL, so a
group that stops the bot reading along leaves none of its messages in the files.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from .models import Heard, Speaker

ROWS_PER_INSERT = 100  # 7 parameters a row stays far below SQLite's variable limit
_COLUMNS = "chat, seq, message_id, speaker_id, speaker_name, text, created_at"


def members_of(chat: str) -> str:
    """SQL matching the members' own conversations (``group:1:42``) of the chat that the SQL
    expression ``chat`` names (a parameter), by key range."""
    return f"(conversation > {chat} || ':' AND conversation < {chat} || ';')"


class BackgroundLog:
    """Background rows on the store's connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def add(self, rows: Sequence[tuple[str, Heard]], keep: int) -> None:
        """Keep ``(chat, heard)`` rows, then only the newest ``keep`` of each chat among them."""
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            params = [value for chat, heard in chunk for value in _row(chat, heard)]
            await self._db.execute(
                f"INSERT OR IGNORE INTO background ({_COLUMNS}) VALUES {values}", params
            )
        chats = sorted({chat for chat, _ in rows})
        for start in range(0, len(chats), ROWS_PER_INSERT):
            await self._prune(chats[start : start + ROWS_PER_INSERT], keep)

    async def _prune(self, chats: Sequence[str], keep: int) -> None:
        marks = ", ".join("?" * len(chats))
        await self._trim(f"WHERE chat IN ({marks})", [*chats, keep])

    async def trim(self, keep: int) -> int:
        """Keep the newest ``keep`` rows of every chat: a ``kill -9`` between a write and its
        pruning, or a bound lowered since, leaves more. Returns how many were deleted."""
        return await self._trim("", [keep])

    async def _trim(self, where: str, params: Sequence[object]) -> int:
        cursor = await self._db.execute(
            "DELETE FROM background WHERE (chat, seq) IN ("
            " SELECT chat, seq FROM ("
            "  SELECT chat, seq, ROW_NUMBER() OVER (PARTITION BY chat ORDER BY seq DESC) AS n"
            f"  FROM background {where}"
            " ) WHERE n > ?)",
            params,
        )
        return cursor.rowcount

    async def since(
        self, chat: str, conversation: str, until: int, *, keep: int, oldest_at: float
    ) -> list[Heard]:
        """``chat``'s background that ``conversation`` has not carried yet and that came
        before ``until``: the newest ``keep`` rows not older than ``oldest_at``, oldest first."""
        rows = await self._db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM background"
            " WHERE chat = :chat AND seq < :until AND created_at >= :oldest"
            " AND seq > (SELECT IFNULL(MAX(upto), 0) FROM background_marks"
            "  WHERE conversation IN (:conversation, :chat || ':*'))"
            " ORDER BY seq DESC LIMIT :keep",
            {
                "chat": chat,
                "conversation": conversation,
                "until": until,
                "oldest": oldest_at,
                "keep": keep,
            },
        )
        return [_heard(*row) for row in reversed(list(rows))]

    async def find(self, chat: str, message_id: str) -> Heard | None:
        """The kept message of ``chat`` with this QQ message id, if it is still kept."""
        rows = await self._db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM background WHERE chat = ? AND message_id = ? LIMIT 1",
            (chat, message_id),
        )
        return next((_heard(*row) for row in rows), None)

    async def count(self, chat: str, oldest_at: float) -> int:
        """How many messages of ``chat`` are kept (not older than ``oldest_at``)."""
        rows = await self._db.execute_fetchall(
            "SELECT COUNT(*) FROM background WHERE chat = ? AND created_at >= ?",
            (chat, oldest_at),
        )
        return int(next(iter(rows))[0])

    async def mark(self, conversation: str, upto: int, *, with_members: bool = False) -> None:
        """``conversation`` (``with_members``: and its members') has carried everything before
        ``upto``: a reset, so that what was said before it is not sent again."""
        await self._db.execute(
            "INSERT INTO background_marks (conversation, upto) VALUES (?, ?)"
            " ON CONFLICT (conversation) DO UPDATE SET upto = MAX(upto, excluded.upto)",
            (conversation, upto - 1),
        )
        if with_members:  # a floor for every member, those without a mark of their own too
            await self.mark(f"{conversation}:*", upto)

    async def forget(self, chat: str) -> int:
        """Delete ``chat``'s background, the background its stored turns carried and the
        summaries written from them, from the database and its WAL; returns how many kept
        messages were deleted."""
        cursor = await self._db.execute("DELETE FROM background WHERE chat = ?", (chat,))
        removed = cursor.rowcount
        await self._db.execute(
            "UPDATE turns SET context = NULL"
            " WHERE COALESCE(scope, conversation) = ? AND context IS NOT NULL",
            (chat,),
        )
        await self._db.execute(
            f"DELETE FROM summaries WHERE conversation = :chat OR {members_of(':chat')}",
            {"chat": chat},
        )
        await self.empty_wal()
        return removed

    async def empty_wal(self) -> None:
        """Copy the WAL into the database and truncate it: old page images go with it."""
        await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def last_seq(self) -> int:
        """The highest number kept: of a message, or of a mark."""
        rows = await self._db.execute_fetchall(
            "SELECT MAX(IFNULL((SELECT MAX(seq) FROM background), 0),"
            " IFNULL((SELECT MAX(upto) FROM background_marks), 0))"
        )
        return int(next(iter(rows))[0])

    async def sweep(self, oldest_at: float) -> int:
        """Delete every chat's background older than ``oldest_at``."""
        cursor = await self._db.execute("DELETE FROM background WHERE created_at < ?", (oldest_at,))
        return cursor.rowcount


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
