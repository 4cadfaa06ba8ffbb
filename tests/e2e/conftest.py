"""End-to-end fixtures: the fake GLM server, and the environment ``python bot.py`` runs with."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_glm import FakeGLM, serve

KEY_ID, KEY_SECRET = "e2ekeyid", "e2e-secret-never-logged"
SELF_ID = 900001
ACCESS_TOKEN = "onebot-test-token"
SUPERUSER = 10000


@pytest.fixture(scope="package")
def glm() -> Iterator[tuple[FakeGLM, str]]:
    fake = FakeGLM(keys={KEY_ID: KEY_SECRET})
    thread, base_url = serve(fake)
    yield fake, base_url
    thread.stop()


@pytest.fixture
def fake(glm) -> FakeGLM:
    fake = glm[0]
    fake.clear()
    fake.latency, fake.max_in_flight = 0.0, 0
    return fake


@pytest.fixture
def bot_env(glm, fake, tmp_path: Path) -> dict[str, str]:
    return {
        "GLM_API_KEY": f"{KEY_ID}.{KEY_SECRET}",
        "GLM_BASE_URL": glm[1],
        "GLM_DB_PATH": str(tmp_path / "data" / "glm_chat.db"),
        "GLM_TIMEOUT": "10",
        "SUPERUSERS": f'["{SUPERUSER}"]',
        "ONEBOT_ACCESS_TOKEN": ACCESS_TOKEN,
        "NICKNAME": '["小智"]',
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.log"
