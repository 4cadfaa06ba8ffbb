"""The plugin as other bots get it: the wheel built from this checkout, installed into a fresh
venv beside a bot of its own that has no ``plugins/`` folder, loaded by its module name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ACCESS_TOKEN, SELF_ID
from tests.support.bot_process import ROOT, BotProcess, RunningBot
from tests.support.fake_glm import FakeGLM

MODULE = "nonebot_plugin_glm_chat"

HOST_BOT = f"""\
import nonebot
from nonebot.adapters.onebot.v11 import Adapter

nonebot.init()
nonebot.get_driver().register_adapter(Adapter)
nonebot.load_plugin("{MODULE}")

import {MODULE}
print("glm-chat loaded from", {MODULE}.__file__, flush=True)
nonebot.run()
"""

# The NoneBot store's load test: `DRIVER=fake`, a driver that has the ASGI, HTTP client and
# WebSocket client mixins but serves nothing (its app is None, setting up a route fails), no
# settings, `init()` and `load_plugin()` only: nothing is started.
FAKE_DRIVER = """\
from nonebot.drivers import ASGIMixin, Driver as BaseDriver, HTTPClientMixin, WebSocketClientMixin
from nonebot.log import logger


def _refuse(*args, **kwargs):
    raise NotImplementedError("the store's fake driver serves nothing")


class Driver(BaseDriver, ASGIMixin, HTTPClientMixin, WebSocketClientMixin):
    type = "fake"
    logger = logger
    server_app = None
    asgi = property(_refuse)
    setup_http_server = setup_websocket_server = _refuse
    request = stream_request = websocket = get_session = _refuse

    def run(self, *args, **kwargs):
        super().run(*args, **kwargs)
"""

STORE_CHECK = f"""\
from nonebot import init, load_plugin
from pydantic import BaseModel

init()
plugin = load_plugin("{MODULE}")
meta = plugin.metadata
assert meta is not None, "no metadata"
assert meta.name and meta.description and meta.usage, meta
assert meta.type == "application" and meta.homepage.startswith("https://"), meta
assert meta.supported_adapters == {{"~onebot.v11"}}, meta.supported_adapters
assert issubclass(meta.config, BaseModel), meta.config
print("metadata", meta.name, "|", meta.type, "|", meta.homepage, flush=True)
"""


def _run(*command: str | Path) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder with a fresh venv that has only the wheel (and what it pulls in) installed:
    ``(folder, its python)``."""
    folder = tmp_path_factory.mktemp("host-bot")
    wheels = folder / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT)
    (wheel,) = wheels.glob(f"{MODULE}-*.whl")
    _run(sys.executable, "-m", "venv", folder / "venv")
    python = folder / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    return folder, python


def test_the_installed_wheel_passes_the_stores_load_check(host, tmp_path):
    _, python = host
    (tmp_path / ".env").write_text("DRIVER=fake\n", "utf-8")
    (tmp_path / "fake.py").write_text(FAKE_DRIVER, "utf-8")
    (tmp_path / "runner.py").write_text(STORE_CHECK, "utf-8")
    bot = BotProcess({}, tmp_path / "check.log", "runner.py", cwd=tmp_path, python=str(python))
    code = bot.run_to_exit()
    output = bot.log()
    assert code == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert "metadata GLM 聊天 | application | https://github.com/glm-chat/glm-chat" in output
    assert output.count("glm-chat console: off") == 1


async def test_a_bot_that_installed_the_wheel_answers_a_group(
    host, fake: FakeGLM, bot_env, log_path
):
    folder, python = host
    (folder / "bot.py").write_text(HOST_BOT, "utf-8")
    bot = RunningBot(
        bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN, cwd=folder, python=str(python)
    )
    async with bot as qq:
        asked = await qq.mention(1, 111, "你好")
        answer = await qq.reply_to(asked)
    assert answer.text.startswith("回声#")
    assert fake.completions()[-1].messages[-1]["content"].endswith("你好")
    loaded_from = next(
        line for line in bot.process.log().splitlines() if "glm-chat loaded from" in line
    )
    assert str(folder / "venv") in loaded_from and "site-packages" in loaded_from, loaded_from
    assert str(ROOT) not in loaded_from
