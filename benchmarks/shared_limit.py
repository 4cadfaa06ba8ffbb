"""Two bot processes on one API key whose limit is 5 calls in flight (the fake platform
refuses the 6th with 429/1302): 200 mentions over 40 groups, split between the processes.
Refusals and the makespan against the ideal (200 x upstream / 5; target <= 1.10 x), with
GLM_REDIS_URL, without it, and with Redis killed a third of the way through.

    python -m benchmarks.shared_limit [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path

from benchmarks.common import bot, fake_glm, machine, workdir
from tests.support.onebot_client import OneBotClient
from tests.support.redis_server import RedisServer

LIMIT, UPSTREAM, MENTIONS, GROUPS = 5, 0.2, 200, 40
ACCOUNTS = (900201, 900202)


async def one_run(base_url: str, folder: Path, redis: RedisServer | None, kill_at: int) -> float:
    """Makespan of the mentions (seconds); ``kill_at``: kill Redis after that many answers."""
    settings = {"GLM_MAX_CONCURRENCY": str(LIMIT), "GLM_MAX_RETRIES": "0"}
    if redis is not None:
        settings["GLM_REDIS_URL"] = redis.url
    async with AsyncExitStack() as stack:
        clients: list[OneBotClient] = []
        for account in ACCOUNTS:
            (folder / str(account)).mkdir()
            running = bot(base_url, folder / str(account), self_id=account, **settings)
            clients.append(await stack.enter_async_context(running))
        started = time.monotonic()
        asked = [
            (
                clients[index % 2],
                await clients[index % 2].mention(1 + index % GROUPS, 111, f"问题{index}"),
            )
            for index in range(MENTIONS)
        ]
        answered = 0

        async def answer(qq: OneBotClient, message: int) -> None:
            nonlocal answered
            await qq.reply_to(message, timeout=120)
            answered += 1
            if redis is not None and answered == kill_at:
                redis.stop()

        await asyncio.gather(*(answer(qq, message) for qq, message in asked))
        return time.monotonic() - started


async def main(runs: int) -> None:
    ideal = MENTIONS * UPSTREAM / LIMIT
    print(
        f"shared limit: 2 processes, {MENTIONS} mentions over {GROUPS} groups, key limit {LIMIT},"
        f" upstream {UPSTREAM}s, ideal makespan {ideal:.1f}s ({machine()})"
    )
    with fake_glm(latency=UPSTREAM, max_in_flight=LIMIT) as (fake, base_url):
        for name, use_redis, kill_at in (
            ("with Redis", True, 0),
            ("without Redis", False, 0),
            ("Redis killed after 1/3", True, MENTIONS // 3),
        ):
            spans, refusals, peaks = [], [], []
            for _ in range(runs):
                with workdir() as folder:
                    redis = RedisServer(folder).start() if use_redis else None
                    fake.refused_1302 = fake.peak_in_flight = 0
                    try:
                        spans.append(await one_run(base_url, folder, redis, kill_at))
                    finally:
                        if redis is not None:
                            redis.stop()
                    refusals.append(fake.refused_1302)
                    peaks.append(fake.peak_in_flight)
            ratios = ", ".join(f"{span / ideal:.2f}" for span in spans)
            print(
                f"  {name:<24} makespan median {statistics.median(spans):.2f}s"
                f" = {statistics.median(spans) / ideal:.2f} x ideal (runs {ratios});"
                f" refused (1302) {refusals}; peak in flight {peaks}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
