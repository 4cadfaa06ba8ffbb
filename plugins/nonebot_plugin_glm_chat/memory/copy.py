"""Copy an SQLite database into an empty PostgreSQL database, to move a bot to ``GLM_DB_URL``.

    python -m nonebot_plugin_glm_chat.memory.copy data/glm_chat.db postgresql://USER:PASS@HOST/DB

(in the checkout: ``python -m plugins.nonebot_plugin_glm_chat.memory.copy ...``). Stop the bot
first. The SQLite file is brought to the current schema, then every table is copied as it is,
counters included, in one transaction: the target's counting triggers are off meanwhile, so
nothing is counted twice. A target that already holds rows is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from .db import StoreOpenError, masked_url, require_asyncpg

# Every table, in an order that keeps the copy readable (no foreign keys to respect).
TABLES = (
    "chat_settings",
    "turns",
    "summaries",
    "usage_daily",
    "chats",
    "background",
    "background_marks",
)
BATCH = 5000  # rows read from SQLite and written at once


class CopyRefused(RuntimeError):
    """The copy cannot start; the message says why."""


async def copy_database(
    sqlite_path: Path, url: str, say: Callable[[str], None] = print
) -> dict[str, int]:
    """Copy every table of ``sqlite_path`` into the PostgreSQL database at ``url``; how many rows
    each table had. Raises ``CopyRefused`` or ``StoreOpenError`` with a message for the
    operator."""
    require_asyncpg(url)
    from .postgres import open_postgres
    from .schema_postgres import COUNTED
    from .sqlite import open_sqlite

    if not await asyncio.to_thread(sqlite_path.is_file):  # else SQLite would create it
        raise CopyRefused(f"{sqlite_path} is not a file")
    source = await open_sqlite(sqlite_path)
    try:
        target = await open_postgres(url)
        try:
            async with target.transaction() as tx:
                await tx.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
                held = [t for t in TABLES if await tx.fetch(f"SELECT 1 FROM {t} LIMIT 1")]
                if held:
                    raise CopyRefused(
                        f"{target.url} is not empty ({', '.join(held)} hold rows); copy into an"
                        " empty database"
                    )
                for table in COUNTED:
                    await tx.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                copied = {}
                for table in TABLES:
                    columns = [
                        str(name)
                        for (name,) in await tx.fetch(
                            "SELECT column_name FROM information_schema.columns"
                            " WHERE table_schema = current_schema() AND table_name = :table"
                            " ORDER BY ordinal_position",
                            {"table": table},
                        )
                    ]
                    copied[table] = 0
                    async for rows in source.stream(
                        f"SELECT {', '.join(columns)} FROM {table}", BATCH
                    ):
                        await tx.copy_rows(table, columns, rows)
                        copied[table] += len(rows)
                    say(f"{table}: {copied[table]} rows")
                for table in COUNTED:
                    await tx.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        finally:
            await target.close()
    finally:
        await source.close()
    say(f"copied {sum(copied.values())} rows from {sqlite_path} to {masked_url(url)}")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nonebot_plugin_glm_chat.memory.copy",
        description="Copy glm-chat's SQLite database into an empty PostgreSQL database.",
    )
    parser.add_argument("sqlite_path", type=Path, help="the SQLite file (GLM_DB_PATH)")
    parser.add_argument("postgres_url", help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    args = parser.parse_args(argv)
    if not args.postgres_url.startswith(("postgresql://", "postgres://")):
        parser.error("the target must be a postgresql:// or postgres:// URL")
    try:
        asyncio.run(copy_database(args.sqlite_path, args.postgres_url))
    except (CopyRefused, StoreOpenError) as error:
        print(f"copy refused: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
