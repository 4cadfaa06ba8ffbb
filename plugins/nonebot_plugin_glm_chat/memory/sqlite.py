"""The SQLite backend (aiosqlite): one file, WAL, readable by its owner only.

Deleted text is overwritten (``secure_delete``) and ``purge_deleted`` empties the WAL, so what is
forgotten leaves the files too.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from .db import Params, Row, StoreOpenError, check_version
from .schema import MIGRATIONS

# SQLite's side files, created beside the database with the database file's mode.
SIDE_FILES = ("-wal", "-shm", "-journal")
PRAGMAS = (
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "busy_timeout = 5000",
    "foreign_keys = ON",
    "secure_delete = ON",  # deleted text is overwritten, not left in free pages
)


class SqliteDatabase:
    """One aiosqlite connection in autocommit; a transaction holds the others back."""

    kind = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, gate: asyncio.Lock | None) -> None:
        self._db = connection
        self._gate = gate  # held while a transaction runs; None: this is that transaction

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        if self._gate is not None and self._gate.locked():
            async with self._gate:
                return await self._fetch(sql, params)
        return await self._fetch(sql, params)

    async def execute(self, sql: str, params: Params | None = None, *, retry: bool = False) -> int:
        # ``retry`` has nothing to do: SQLite has one writer at a time.
        if self._gate is not None and self._gate.locked():
            async with self._gate:
                return await self._execute(sql, params)
        return await self._execute(sql, params)

    async def _fetch(self, sql: str, params: Params | None) -> list[Row]:
        return list(await self._db.execute_fetchall(sql, params or {}))

    async def _execute(self, sql: str, params: Params | None) -> int:
        cursor = await self._db.execute(sql, params or {})
        return cursor.rowcount

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteDatabase]:
        if self._gate is None:
            raise RuntimeError("SQLite transactions do not nest")
        async with self._gate:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteDatabase(self._db, None)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def stream(self, sql: str, size: int = 1000) -> AsyncIterator[list[Row]]:
        """A query's rows, ``size`` at a time (for copying a large table)."""
        async with self._db.execute(sql) as cursor:
            while rows := list(await cursor.fetchmany(size)):
                yield rows

    async def schema_version(self) -> int:
        rows = await self.fetch("PRAGMA user_version")
        return int(rows[0][0]) if rows else 0

    async def purge_deleted(self) -> None:
        """Copy the WAL into the database and truncate it: old page images go with it."""
        await self.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        await self._db.close()


async def open_sqlite(path: Path | str) -> SqliteDatabase:
    """Open (creating the folder, and the file with mode 0600) and bring the schema up to
    date; raises ``StoreOpenError`` saying why when the file cannot be used."""
    path = Path(path)
    try:
        _private_file(path)
        connection = await aiosqlite.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as error:
        raise _open_error(path, error) from error
    db = SqliteDatabase(connection, asyncio.Lock())
    try:
        for pragma in PRAGMAS:
            await db.execute(f"PRAGMA {pragma}")
        await _migrate(db)
    except BaseException as error:
        await db.close()
        if isinstance(error, sqlite3.DatabaseError):  # e.g. "file is not a database"
            raise _open_error(path, error) from error
        raise
    return db


async def _migrate(db: SqliteDatabase) -> None:
    """Each step whole or not at all; this runs at open, before anything else uses the file."""
    current = await db.schema_version()
    check_version(current, len(MIGRATIONS), setting="GLM_DB_PATH")
    for version, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        async with db.transaction() as step:
            await migration(step)
            await step.execute(f"PRAGMA user_version = {version}")


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
