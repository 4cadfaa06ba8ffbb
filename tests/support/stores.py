"""Where a test's store lives: an SQLite file, or a fresh database on the test's PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore, open_store


@dataclass(frozen=True)
class StoreAt:
    """``await store_at.open()`` opens the test's store, again after a close if need be."""

    backend: str
    path: Path
    url: str | None = None

    async def open(self) -> ContextStore:
        return await open_store(self.path, self.url)
