"""Two bot processes on one API key, against the platform's concurrency limit: with
GLM_REDIS_URL they keep GLM_MAX_CONCURRENCY together, and nothing is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.e2e.conftest import ACCESS_TOKEN
from tests.support.bot_process import RunningBot
from tests.support.fake_glm import FakeGLM
from tests.support.redis_server import RedisServer

ACCOUNTS = (900101, 900102)  # one QQ account per bot process
LIMIT = 5  # what the key allows at once, and GLM_MAX_CONCURRENCY


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


async def _mentions_to_both(fake: FakeGLM, bot_env, tmp_path: Path, **settings: str) -> int:
    """20 mentions to each of two bots at once; how many answers came back."""
    fake.latency, fake.max_in_flight = 0.3, LIMIT
    async with AsyncExitStack() as stack:
        clients = []
        for account in ACCOUNTS:
            env = {
                **bot_env,
                "GLM_DB_PATH": str(tmp_path / f"{account}.db"),
                "GLM_MAX_CONCURRENCY": str(LIMIT),
                "GLM_MAX_RETRIES": "0",  # a refusal shows as a refusal, not as a retry
                **settings,
            }
            log = tmp_path / f"{account}.log"
            bot = RunningBot(env, log, self_id=account, token=ACCESS_TOKEN)
            clients.append(await stack.enter_async_context(bot))
        asked = [
            (qq, await qq.mention(group, 111, f"第{group}组的问题"))
            for group in range(1, 21)
            for qq in clients
        ]
        answers = await asyncio.gather(*(qq.reply_to(message) for qq, message in asked))
    return sum("回声" in answer.text for answer in answers)


async def test_two_processes_sharing_a_key_keep_its_limit_together(
    fake: FakeGLM, bot_env, tmp_path, redis_server
):
    answered = await _mentions_to_both(fake, bot_env, tmp_path, GLM_REDIS_URL=redis_server.url)
    assert (answered, fake.refused_1302) == (40, 0)
    assert fake.peak_in_flight == LIMIT


async def test_without_redis_each_process_keeps_only_its_own_limit(
    fake: FakeGLM, bot_env, tmp_path
):
    """What GLM_REDIS_URL is for: on their own the two processes overrun the key."""
    answered = await _mentions_to_both(fake, bot_env, tmp_path)
    assert fake.refused_1302 > 0 and answered == 40 - fake.refused_1302


async def test_redis_lost_mid_run_costs_no_answer_and_is_found_again(
    fake: FakeGLM, bot_env, tmp_path, redis_server
):
    fake.latency = 0.05
    async with AsyncExitStack() as stack:
        bots = [
            RunningBot(
                {
                    **bot_env,
                    "GLM_DB_PATH": str(tmp_path / f"{account}.db"),
                    "GLM_REDIS_URL": redis_server.url,
                },
                tmp_path / f"{account}.log",
                self_id=account,
                token=ACCESS_TOKEN,
            )
            for account in ACCOUNTS
        ]
        clients = [await stack.enter_async_context(bot) for bot in bots]

        async def ask_each(round_: str) -> list[str]:
            asked = [(qq, await qq.mention(7, 111, f"{round_}的问题")) for qq in clients]
            return [(await qq.reply_to(message)).text for qq, message in asked]

        assert all("回声" in text for text in await ask_each("之前"))
        redis_server.stop()
        for round_ in ("断开时一", "断开时二"):
            assert all("回声" in text for text in await ask_each(round_))
        for bot in bots:
            await bot.process.wait_for_log("cannot be reached", timeout=10)
        redis_server.start()
        for bot in bots:
            await bot.process.wait_for_log("is back", timeout=15)
        assert all("回声" in text for text in await ask_each("恢复后"))
    for bot in bots:
        log = bot.process.log()
        assert log.count("cannot be reached") == 1 and log.count("is back") == 1, log[-2000:]
        assert "Traceback" not in log
