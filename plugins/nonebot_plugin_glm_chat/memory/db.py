"""What the store needs of a database, whichever backend holds it.

SQL is written once, in the subset SQLite and PostgreSQL share: named ``:params``, ``COALESCE``,
``ON CONFLICT``, ``CAST(:x AS TEXT)`` where PostgreSQL could not tell a parameter's type, and the
local day passed in from Python. Each backend keeps to itself what only it has (pragmas, file
modes, the WAL; a connection pool, advisory locks).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

Params = Mapping[str, object]
# What an operator without asyncpg is told to run.
INSTALL_POSTGRES = (
    'pip install "nonebot-plugin-glm-chat[postgres]" (in the checkout: pip install ".[postgres]")'
)
Row = Sequence[Any]


class StoreOpenError(RuntimeError):
    """The database could not be created, reached or opened; the message says which and why.

    ``setting`` names the setting that chose it, for the operator's one line at start.
    """

    def __init__(self, message: str, *, setting: str = "GLM_DB_PATH") -> None:
        super().__init__(message)
        self.setting = setting


class SchemaTooNewError(StoreOpenError):
    """The database was written by a newer glm-chat."""


class Database(Protocol):
    """One database: statements in autocommit, or several in one transaction."""

    kind: str  # "sqlite" or "postgresql", as the operator names it

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        """The rows a query returns."""
        ...

    async def execute(self, sql: str, params: Params | None = None, *, retry: bool = False) -> int:
        """Run a statement; how many rows it changed. ``retry``: a statement that numbers its
        row from the table (``MAX(seq) + 1``) is run again if another writer took the number."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """A database whose statements commit together at the end of the block, or not at all."""
        ...

    async def schema_version(self) -> int: ...

    async def purge_deleted(self) -> None:
        """Drop what the backend keeps of deleted rows outside the table where it can."""
        ...

    async def close(self) -> None: ...


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: fit for a log line."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def require_asyncpg(url: str) -> None:
    """PostgreSQL needs the asyncpg package (the ``postgres`` extra)."""
    if importlib.util.find_spec("asyncpg") is None:
        raise StoreOpenError(
            f"{masked_url(url)} needs the asyncpg package: {INSTALL_POSTGRES}",
            setting="GLM_DB_URL",
        )


def check_version(current: int, known: int, *, setting: str) -> None:
    """Refuse a schema newer than this glm-chat knows."""
    if current > known:
        raise SchemaTooNewError(
            f"database schema v{current} is newer than this glm-chat (v{known})", setting=setting
        )
