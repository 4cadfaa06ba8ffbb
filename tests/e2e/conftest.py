"""End-to-end fixtures: the fake GLM server, and the environment ``python bot.py`` runs with."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_glm import FakeGLM, served

KEY_ID, KEY_SECRET = "e2ekeyid", "e2e-secret-never-logged"
SELF_ID = 900001
ACCESS_TOKEN = "onebot-test-token"
SUPERUSER = 10000


@pytest.fixture(scope="package")
def glm() -> Iterator[tuple[FakeGLM, str]]:
    fake = FakeGLM(keys={KEY_ID: KEY_SECRET})
    with served(fake) as base_url:
        yield fake, base_url


@pytest.fixture
def fake(glm) -> FakeGLM:
    return glm[0].reset()


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
