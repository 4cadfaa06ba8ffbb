"""What ``python bot.py`` tells the operator at start, and when it refuses to start."""

import shutil
from pathlib import Path

import pytest

from plugins.nonebot_plugin_glm_chat.config import KEY_PLACEHOLDER
from tests.e2e.conftest import ACCESS_TOKEN, SELF_ID
from tests.support.bot_process import ROOT, BotProcess, RunningBot


def refused(env: dict[str, str], log_path: Path, *, cwd: Path = ROOT) -> list[str]:
    """Run the bot until it exits; check it failed without a traceback; its output lines."""
    bot = BotProcess(env, log_path, cwd=cwd)
    code = bot.run_to_exit()
    output = bot.log()
    assert code != 0, output
    assert "Traceback" not in output, output
    return output.splitlines()


def told(lines: list[str], message: str) -> bool:
    """Whether one log line is exactly ``message`` after NoneBot's time, level and module."""
    return any(line.endswith(f"| {message}") for line in lines)


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        (
            "GLM_HISTORY_TURNS",
            "-1",
            "GLM_HISTORY_TURNS: '-1' is not a whole number from 0 to 500;"
            " write e.g. GLM_HISTORY_TURNS=20",
        ),
        (
            "GLM_GROUPS",
            "[123, abc",
            "GLM_GROUPS: '[123, abc' is not a JSON list of group ids;"
            " write e.g. GLM_GROUPS=[123, 456]",
        ),
        (
            "GLM_CALL_MODE",
            "streaming",
            "GLM_CALL_MODE: 'streaming' is not one of stream, sync, async;"
            " write e.g. GLM_CALL_MODE=stream",
        ),
        (
            "GLM_BASE_URL",
            "open.bigmodel.cn",
            "GLM_BASE_URL: 'open.bigmodel.cn' is not an http:// or https:// URL;"
            " write e.g. GLM_BASE_URL=https://open.bigmodel.cn/api/paas/v4",
        ),
        (
            "GLM_TIMEOUT",
            "0",
            "GLM_TIMEOUT: '0' is not a number of seconds above 0; write e.g. GLM_TIMEOUT=60",
        ),
        (
            "ONEBOT_ACCESS_TOKEN",
            "change-me",
            "ONEBOT_ACCESS_TOKEN is still the template's published 'change-me', so anyone could"
            " connect as your QQ account; set a long random string in .env.local or the"
            " environment, and the same token in the QQ client",
        ),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_line(bot_env, log_path, setting, value, line):
    lines = refused({**bot_env, setting: value}, log_path)
    assert told(lines, line), "\n".join(lines)
    assert not any("Running NoneBot" in text for text in lines)  # never runs without the plugin


def test_several_bad_settings_are_told_one_line_each(bot_env, log_path):
    lines = refused({**bot_env, "GLM_HISTORY_TURNS": "many", "GLM_COOLDOWN": "-5"}, log_path)
    problems = [text for text in lines if "[CRITICAL]" in text]
    assert [text.split("| ", 1)[1].split(":")[0] for text in problems] == [
        "GLM_HISTORY_TURNS",
        "GLM_COOLDOWN",
    ]


def test_a_bad_key_setting_is_told_without_its_value(bot_env, log_path):
    lines = refused({**bot_env, "GLM_API_KEY": '{"keyid": "s3cret-value"}'}, log_path)
    assert told(
        lines,
        "GLM_API_KEY: the value is not a platform key (id.secret) or a JSON list of keys;"
        ' write e.g. GLM_API_KEY=<id.secret>, or GLM_API_KEY=["<id1.secret1>", "<id2.secret2>"]',
    ), "\n".join(lines)
    assert "s3cret-value" not in "\n".join(lines)


def test_a_database_that_cannot_be_created_stops_the_start_with_one_line(
    bot_env, log_path, tmp_path
):
    (tmp_path / "a-file").write_text("not a folder")
    db = tmp_path / "a-file" / "glm_chat.db"
    lines = refused({**bot_env, "GLM_DB_PATH": str(db)}, log_path)
    assert told(
        lines,
        f"GLM_DB_PATH: cannot create or open {db} (Not a directory: {db.parent});"
        " set GLM_DB_PATH to a file in a folder the bot can write, e.g."
        " GLM_DB_PATH=data/glm_chat.db",
    ), "\n".join(lines)


def checkout_with(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of the bot's files with these dotenv files."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for name in ("bot.py", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "plugins", folder / "plugins", ignore=ignore)
    for name, text in files.items():
        (folder / name).write_text(text, "utf-8")
    return folder


def test_env_local_is_read_after_the_template_and_the_environment_wins(bot_env, log_path, tmp_path):
    checkout = checkout_with(
        tmp_path,
        {
            ".env": "ENVIRONMENT=prod\nDRIVER=~fastapi\n",
            ".env.prod": "GLM_HISTORY_TURNS=10\nGLM_CALL_MODE=sync\n",
            ".env.local": "GLM_HISTORY_TURNS=-3\nGLM_CALL_MODE=poll\n",
        },
    )
    lines = refused({**bot_env, "GLM_CALL_MODE": "never"}, log_path, cwd=checkout)
    assert told(
        lines,
        "GLM_HISTORY_TURNS: '-3' is not a whole number from 0 to 500;"
        " write e.g. GLM_HISTORY_TURNS=20",
    ), "\n".join(lines)
    assert told(
        lines,
        "GLM_CALL_MODE: 'never' is not one of stream, sync, async; write e.g. GLM_CALL_MODE=stream",
    ), "\n".join(lines)


async def test_the_start_says_where_qq_connects_and_that_the_placeholder_is_no_key(
    bot_env, log_path
):
    env = {**bot_env, "GLM_API_KEY": KEY_PLACEHOLDER, "ENVIRONMENT": "dev"}
    running = RunningBot(env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN)
    async with running:
        pass
    lines = running.process.log().splitlines()
    port = running.process.port
    assert told(
        lines,
        f"GLM_API_KEY is still the placeholder {KEY_PLACEHOLDER}, so the bot answers that it is"
        " not configured; put your key from the BigModel console in .env.local or the"
        " environment",
    ), "\n".join(lines)
    assert told(
        lines,
        f"QQ client: add a reverse WebSocket to ws://127.0.0.1:{port}/onebot/v11/ws"
        " with the access token set in ONEBOT_ACCESS_TOKEN",
    ), "\n".join(lines)
    assert any("glm-chat ready: model=" in text and "keys=0" in text for text in lines)
    log = "\n".join(lines)
    assert "is not set" not in log and ".env.prod" not in log
    assert ACCESS_TOKEN not in log


def test_a_secret_in_the_committed_template_is_pointed_at_env_local(bot_env, log_path, tmp_path):
    checkout = checkout_with(
        tmp_path,
        {
            ".env": "ENVIRONMENT=prod\nDRIVER=~fastapi\n",
            ".env.prod": "GLM_API_KEY=abc.def-committed\nGLM_CALL_MODE=never\n",
        },
    )
    del bot_env["GLM_API_KEY"]
    lines = refused(bot_env, log_path, cwd=checkout)
    assert told(
        lines,
        "GLM_API_KEY is written in .env.prod, a file committed with the project: move it to"
        " .env.local (git ignores it) or the environment",
    ), "\n".join(lines)
    assert not any("def-committed" in line for line in lines)


def test_the_plugin_loads_and_starts_on_a_driver_without_an_http_server(tmp_path):
    """As the NoneBot store's load test runs it: no settings, a driver that serves nothing;
    the console is then simply off."""
    script = tmp_path / "load.py"
    script.write_text(
        "import sys\n"
        "sys.path.insert(0, '.')\n"
        "import nonebot\n"
        "nonebot.init(driver='~none')\n"
        "plugin = nonebot.load_plugin('plugins.nonebot_plugin_glm_chat')\n"
        "assert plugin is not None and plugin.metadata is not None\n"
        "driver = nonebot.get_driver()\n"
        "@driver.on_startup\n"
        "async def leave():\n"
        "    import asyncio\n"
        "    asyncio.get_running_loop().call_later(0.5, driver.exit)\n"
        "nonebot.run()\n",
        "utf-8",
    )
    env = {"GLM_DB_PATH": str(tmp_path / "glm.db"), "ENVIRONMENT": "none"}
    bot = BotProcess(env, tmp_path / "load.log", script=str(script))
    code = bot.run_to_exit()
    output = bot.log()
    assert code == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert "glm-chat ready" in output
    assert "glm-chat console: off, it needs NoneBot's FastAPI driver" in output  # said once
    assert not (tmp_path / "console_token").exists()


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING"])
async def test_log_level_decides_what_a_message_prints(bot_env, log_path: Path, level: str):
    """bot.py's console handler drops records below LOG_LEVEL early; what shows is as before."""
    running = RunningBot(
        {**bot_env, "LOG_LEVEL": level}, log_path, self_id=SELF_ID, token=ACCESS_TOKEN
    )
    async with running as qq:
        await qq.reply_to(await qq.mention(123, 456, "你好"))
    output = running.process.log()
    assert ("[DEBUG] nonebot | Checking for matchers completed" in output) == (level == "DEBUG")
    assert ("[INFO] nonebot_plugin_glm_chat | glm call conv=group:123" in output) == (
        level != "WARNING"
    )
