"""The PostgreSQL backend (asyncpg): a small connection pool, for several bot processes.

The store's named ``:params`` become asyncpg's ``$1, $2...`` once per statement. The schema is
brought up to date in one transaction under an advisory lock, so two processes starting together
do not race. Nothing here ever shows the password: URLs are masked in every message.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from .db import Params, Row, StoreOpenError, check_version, masked_url
from .schema_postgres import MIGRATIONS

SETTING = "GLM_DB_URL"
POOL_SIZE = 5  # connections at most; the store's statements are short
CONNECT_TIMEOUT = 10.0  # seconds to reach the server at start
STATEMENT_TIMEOUT = 30.0  # seconds a statement may take before it fails (a server gone quiet)
CLOSE_TIMEOUT = 5.0  # seconds a closing pool waits for its statements before it cuts them
RETRIES = 10  # tries of a statement whose number another writer took
RETRY_WAIT = 0.005  # seconds times the try, at most: a random pause, so writers fall out of step
MIGRATION_LOCK = 0x676C6D2D63686174  # pg_advisory_xact_lock key: b"glm-chat"

# What a server that cannot be used raises: unreachable, refusing, or a bad URL.
FAILURES = (
    OSError,
    asyncio.TimeoutError,
    ValueError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

_NAME = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=512)
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its ``:name`` parameters numbered ``$1, $2...`` in order of first use,
    and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAME.sub(number, sql), tuple(names)


def _rowcount(status: str) -> int:
    """Rows changed, from asyncpg's status line (``INSERT 0 1``, ``DELETE 3``)."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class PostgresDatabase:
    """Statements on a pool (each on whichever connection is free), or on one connection
    inside a transaction."""

    kind = "postgresql"

    def __init__(self, target: asyncpg.Pool | asyncpg.Connection, url: str) -> None:
        self._target = target
        self.url = url  # masked

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        query, args = _bind(sql, params)
        return list(await self._target.fetch(query, *args))

    async def execute(self, sql: str, params: Params | None = None, *, retry: bool = False) -> int:
        query, args = _bind(sql, params)
        # Not inside a transaction: the failed statement has aborted it.
        tries = RETRIES if retry and isinstance(self._target, asyncpg.Pool) else 1
        for attempt in range(1, tries + 1):
            try:
                return _rowcount(await self._target.execute(query, *args))
            except asyncpg.UniqueViolationError:
                if attempt == tries:
                    raise
                await asyncio.sleep(random.uniform(0, RETRY_WAIT * attempt))
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresDatabase]:
        if isinstance(self._target, asyncpg.Pool):
            async with self._target.acquire() as connection, connection.transaction():
                yield PostgresDatabase(connection, self.url)
        else:
            async with self._target.transaction():  # a savepoint
                yield self

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """Write many rows at once (COPY)."""
        await self._target.copy_records_to_table(table, records=rows, columns=list(columns))

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT to_regclass('schema_version') IS NOT NULL")
        if not rows[0][0]:
            return 0
        rows = await self.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(rows[0][0])

    async def purge_deleted(self) -> None:
        """Nothing to do: old row versions stay until (auto)VACUUM reclaims them."""

    async def close(self) -> None:
        if isinstance(self._target, asyncpg.Pool):
            try:
                await asyncio.wait_for(self._target.close(), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                self._target.terminate()


def _bind(sql: str, params: Params | None) -> tuple[str, list[Any]]:
    if not params:
        return sql, []
    query, names = positional(sql)
    return query, [params[name] for name in names]


async def open_postgres(url: str) -> PostgresDatabase:
    """Connect a pool and bring the schema up to date; raises ``StoreOpenError`` with one
    line saying why (the password masked) when the server cannot be used."""
    shown = masked_url(url)
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=CONNECT_TIMEOUT,
            command_timeout=STATEMENT_TIMEOUT,
            server_settings={"TimeZone": local_zone(), "application_name": "glm-chat"},
        )
    except FAILURES as error:
        raise StoreOpenError(
            f"cannot connect to {shown} ({_reason(error, url)})", setting=SETTING
        ) from None
    db = PostgresDatabase(pool, shown)
    try:
        await _migrate(db)
    except BaseException as error:
        await db.close()
        if isinstance(error, FAILURES):
            raise StoreOpenError(
                f"cannot prepare the tables in {shown} ({_reason(error, url)})", setting=SETTING
            ) from None
        raise
    return db


async def _migrate(db: PostgresDatabase) -> None:
    """Every missing step in one transaction, one process at a time."""
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock(:key)", {"key": MIGRATION_LOCK})
        await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await tx.schema_version()
        check_version(current, len(MIGRATIONS), setting=SETTING)
        if current == len(MIGRATIONS):
            return
        for migration in MIGRATIONS[current:]:
            await migration(tx)
        await tx.execute("DELETE FROM schema_version")
        await tx.execute(
            "INSERT INTO schema_version (version) VALUES (:version)", {"version": len(MIGRATIONS)}
        )


def _reason(error: BaseException, url: str) -> str:
    """The driver's words, without the password should they ever quote it."""
    reason = str(error) or type(error).__name__
    password = urlsplit(url).password
    for secret in {password, unquote(password or "")} - {None, ""}:
        reason = reason.replace(secret, "***")  # type: ignore[arg-type]
    return reason


def local_zone() -> str:
    """This machine's time zone as PostgreSQL names it, so that a turn's local day is the same
    as with SQLite (``localtime``): ``TZ``, else the zone /etc/localtime links to, else the
    current UTC offset."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and not tz.startswith("/"):
        return tz
    try:
        target = os.readlink(tz or "/etc/localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        return target.rpartition("zoneinfo/")[2]
    offset = time.localtime().tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset), 60)
    # POSIX form: the name, then the offset west of Greenwich (the sign reversed).
    west = "-" if offset >= 0 else "+"
    return f"<{sign}{hours:02d}{minutes:02d}>{west}{hours}:{minutes:02d}"
