"""``python bot.py`` with ``GLM_DB_URL``: its context in the real PostgreSQL server the tests
start, kept across a restart; a server it cannot use stops it with one line, never the password."""

import asyncio
from pathlib import Path

from tests.e2e.conftest import ACCESS_TOKEN, SELF_ID
from tests.e2e.test_startup import refused, told
from tests.support.bot_process import RunningBot, free_port
from tests.support.postgres import PASSWORD, PostgresServer


async def test_the_conversation_is_kept_in_postgresql_across_a_restart(
    fake, bot_env, log_path, postgres_server: PostgresServer
):
    url = await postgres_server.database()
    env = {**bot_env, "GLM_DB_URL": url}
    async with RunningBot(env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        first = await qq.mention(1, 111, "我叫Alice", nickname="Alice")
        assert (await qq.reply_to(first)).text == "回声#2：Alice(111): 我叫Alice"

    async with RunningBot(env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        again = await qq.mention(1, 222, "她叫什么？", nickname="Bob")
        await qq.reply_to(again)
        assert fake.completions()[-1].messages[1:] == [
            {"role": "user", "content": "Alice(111): 我叫Alice"},
            {"role": "assistant", "content": "回声#2：Alice(111): 我叫Alice"},
            {"role": "user", "content": "Bob(222): 她叫什么？"},
        ]
    log = log_path.read_text()
    assert f"db={url.replace(PASSWORD, '***')}" in log
    assert PASSWORD not in log
    assert not await asyncio.to_thread(Path(bot_env["GLM_DB_PATH"]).exists)  # no SQLite file


def test_an_unreachable_server_stops_the_start_with_one_line(bot_env, log_path):
    port = free_port()
    url = f"postgresql://glm:{PASSWORD}@127.0.0.1:{port}/glm"
    lines = refused({**bot_env, "GLM_DB_URL": url}, log_path)
    said = [line for line in lines if "GLM_DB_URL: cannot connect to" in line]
    assert len(said) == 1, "\n".join(lines)
    assert f"postgresql://glm:***@127.0.0.1:{port}/glm (" in said[0]
    assert said[0].endswith(
        "; check that the server runs and that the URL's user, password and database are"
        " right, or unset GLM_DB_URL to use the SQLite file at GLM_DB_PATH"
    )
    assert PASSWORD not in "\n".join(lines)


def test_without_asyncpg_the_start_stops_with_one_line(bot_env, log_path, tmp_path):
    # As if asyncpg were not installed: Python finds no such module.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['asyncpg'] = None\n")
    url = f"postgresql://glm:{PASSWORD}@127.0.0.1:5432/glm"
    lines = refused({**bot_env, "GLM_DB_URL": url, "PYTHONPATH": str(hide)}, log_path)
    assert told(
        lines,
        "GLM_DB_URL is set, but the asyncpg package is not installed: pip install"
        ' "nonebot-plugin-glm-chat[postgres]" (in the checkout: pip install ".[postgres]")',
    ), "\n".join(lines)
    assert PASSWORD not in "\n".join(lines)
