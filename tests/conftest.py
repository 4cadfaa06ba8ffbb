"""Test setup: NoneBot (through nonebug) talks to a fake GLM server on 127.0.0.1."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nonebot
import pytest
from nonebot.adapters.onebot.v11 import Adapter as OneBotV11Adapter
from nonebot.log import logger
from nonebug import NONEBOT_INIT_KWARGS

from tests.support.fake_glm import FakeGLM, serve
from tests.support.postgres import PostgresServer

if TYPE_CHECKING:
    from tests.support.stores import StoreAt

API_KEY_ID = "testkeyid"
API_KEY_SECRET = "testkeysecret"
SUPERUSER_ID = 10000
IGNORED_BOT_ID = 3000

_fake = FakeGLM(keys={API_KEY_ID: API_KEY_SECRET})
_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    server, base_url = serve(_fake)
    tmp = tempfile.TemporaryDirectory(prefix="glm-chat-tests-")
    _state.update(server=server, tmp=tmp)
    kwargs = {
        "driver": "~fastapi",
        "_env_file": ("tests/.env.test",),  # not the bot's .env / .env.prod
        "superusers": {str(SUPERUSER_ID)},
        "nickname": {"小智"},
        "command_start": {"/"},
        "log_level": "WARNING",
        "glm_api_key": f"{API_KEY_ID}.{API_KEY_SECRET}",
        "glm_base_url": base_url,
        "glm_db_path": str(Path(tmp.name) / "nonebug.db"),
        "glm_timeout": 2,
        "glm_max_retries": 1,
        "glm_max_input_chars": 50,
        "glm_ignore_users": [str(IGNORED_BOT_ID)],
    }
    config.stash[NONEBOT_INIT_KWARGS] = kwargs
    # Initialise and load the plugin before collection, so test modules may import its parts
    # at the top (the plugin reads its config on import). nonebug's own init is then a no-op.
    nonebot.init(**kwargs)
    nonebot.get_driver().register_adapter(OneBotV11Adapter)
    nonebot.load_plugin("plugins.nonebot_plugin_glm_chat")


def pytest_unconfigure(config: pytest.Config) -> None:
    if server := _state.get("server"):
        server.stop()  # type: ignore[attr-defined]
    if tmp := _state.get("tmp"):
        tmp.cleanup()  # type: ignore[attr-defined]


@pytest.fixture
def fake_glm() -> Iterator[FakeGLM]:
    """The fake server behind the plugin, emptied before and after each test."""
    _fake.clear()
    yield _fake
    _fake.clear()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log message written while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


@pytest.fixture
def glm_base_url() -> str:
    """The fake server's ``GLM_BASE_URL``."""
    return nonebot.get_driver().config.glm_base_url


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "glm.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole run; one that cannot start fails the tests using it."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def store_at(request: pytest.FixtureRequest, tmp_db: Path) -> StoreAt:
    """The test's store on each backend: SQLite at ``tmp_db``, or an empty PostgreSQL database."""
    from tests.support.stores import StoreAt  # the plugin loads once NoneBot is initialised

    if request.param == "sqlite":
        return StoreAt("sqlite", tmp_db)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return StoreAt("postgres", tmp_db, await server.database())
