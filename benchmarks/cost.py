"""Cost per message: the bot's CPU time per answered mention, against a NoneBot bot that only
echoes (same driver, adapter and workload, in the same run; target <= 2.5 x), and the time the
bot adds on top of a 200 ms upstream (p50, p99). Also JWTs minted per 1000 requests.

Workload: bursts of 20 mentions, each in its own group, the next burst once all are answered;
then single mentions one at a time, where the bot's own overhead is not hidden by the framework's
handling of a burst.

    python -m benchmarks.cost [--bursts 50]
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.common import ECHO_BOT, bot, fake_glm, machine, quantile, summary, workdir
from tests.support.bot_process import RunningBot

BURST, UPSTREAM = 20, 0.2


SINGLES = 50


async def drive(running: RunningBot, bursts: int) -> tuple[list[float], list[float], list[float]]:
    """Run the workload: CPU seconds per message for each burst, burst answer latencies, and
    single-message latencies."""
    cpu_per_message: list[float] = []
    latencies: list[float] = []
    singles: list[float] = []
    loop = asyncio.get_running_loop()
    async with running as qq:
        await qq.reply_to(await qq.mention(999, 1, "warm up"))
        for burst in range(bursts):
            before = running.process.cpu_seconds()
            asked = {}
            for index in range(BURST):
                group = 1 + index
                message_id = await qq.mention(group, 1000 + group, f"第{burst}轮问题{index}")
                asked[message_id] = loop.time()
            for message_id, sent_at in asked.items():
                latencies.append((await qq.reply_to(message_id)).received_at - sent_at)
            cpu_per_message.append((running.process.cpu_seconds() - before) / BURST)
        for index in range(SINGLES):
            sent_at = loop.time()
            answer = await qq.reply_to(await qq.mention(500, 1500, f"单独的问题{index}"))
            singles.append(answer.received_at - sent_at)
    return cpu_per_message, latencies, singles


def ms(values: list[float], fraction: float, minus: float = 0.0) -> str:
    return f"{(quantile(values, fraction) - minus) * 1000:.1f} ms"


async def main(bursts: int) -> None:
    with fake_glm(latency=UPSTREAM) as (fake, base_url):
        with workdir() as folder:
            glm_cpu, glm_latency, glm_single = await drive(
                bot(base_url, folder, GLM_MAX_CONCURRENCY=str(BURST)), bursts
            )
        requests = len(fake.completions())
        tokens = len({r.headers["authorization"] for r in fake.completions()})
        with workdir() as folder:
            echo_cpu, echo_latency, echo_single = await drive(
                bot(base_url, folder, ECHO_BOT), bursts
            )

    print(f"cost: {bursts} bursts of {BURST} mentions, upstream {UPSTREAM}s ({machine()})")
    print(f"  glm-chat CPU  {summary(glm_cpu, ' ms/msg', 1000)}")
    print(f"  echo bot CPU  {summary(echo_cpu, ' ms/msg', 1000)}")
    # CPU time is counted in clock ticks (10 ms): compare totals, not single bursts.
    ratio = sum(glm_cpu) / sum(echo_cpu)
    print(f"  ratio         {ratio:.2f} x the echo bot's CPU per message (target <= 2.5)")
    up = UPSTREAM
    print(
        f"  added, bursts p50 {ms(glm_latency, 0.5, up)}, p99 {ms(glm_latency, 0.99, up)} over "
        f"the upstream; the echo bot answers a burst in p50 {ms(echo_latency, 0.5)}, "
        f"p99 {ms(echo_latency, 0.99)}"
    )
    print(
        f"  added, single p50 {ms(glm_single, 0.5, up)}, p99 {ms(glm_single, 0.99, up)} over "
        f"the upstream; the echo bot answers one in p50 {ms(echo_single, 0.5)}, "
        f"p99 {ms(echo_single, 0.99)}"
    )
    print(
        f"  JWTs minted   {tokens} for {requests} requests "
        f"({1000 * tokens / requests:.2f} per 1000)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=50)
    asyncio.run(main(parser.parse_args().bursts))
