"""Cost per message: the bot's CPU time per answered mention, against a NoneBot bot that only
echoes (same driver, adapter and workload, in the same run; target <= 2.5 x), and the time the
bot adds on top of a 200 ms upstream (p50, p99). Also JWTs minted per 1000 requests.

Workload: bursts of 20 mentions, each in its own group, the next burst once all are answered;
then single mentions one at a time. The CPU ratio is taken at the default
GLM_MAX_CONCURRENCY (5) and at 20: at 5 a burst goes out in four waves, and each wave's
answers (their SSE frames) wake the bot on their own, where at 20 they arrive together. Added
time is taken at 20, where no burst waits for a slot: it is the bot's own overhead, not
queueing.

    python -m benchmarks.cost [--bursts 40]
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field

from benchmarks.common import ECHO_BOT, bot, fake_glm, machine, quantile, summary, workdir
from tests.support.bot_process import RunningBot
from tests.support.onebot_client import OneBotClient

BURST, UPSTREAM, SINGLES = 20, 0.2, 50


@dataclass
class Run:
    cpu_per_message: list[float] = field(default_factory=list)  # one per burst
    burst_latencies: list[float] = field(default_factory=list)
    single_latencies: list[float] = field(default_factory=list)

    @property
    def mean_cpu(self) -> float:
        # CPU time is counted in clock ticks (10 ms): use totals, not single bursts.
        return sum(self.cpu_per_message) / len(self.cpu_per_message)


async def burst(qq: OneBotClient, running: RunningBot, number: int, run: Run) -> None:
    """BURST mentions, each in its own group, all sent before the first answer is awaited."""
    loop = asyncio.get_running_loop()
    before = running.process.cpu_seconds()
    asked = {}
    for index in range(BURST):
        group = 1 + index
        message_id = await qq.mention(group, 1000 + group, f"第{number}轮问题{index}")
        asked[message_id] = loop.time()
    for message_id, sent_at in asked.items():
        run.burst_latencies.append((await qq.reply_to(message_id)).received_at - sent_at)
    run.cpu_per_message.append((running.process.cpu_seconds() - before) / BURST)


async def drive(running: RunningBot, bursts: int) -> Run:
    run = Run()
    loop = asyncio.get_running_loop()
    async with running as qq:
        await qq.reply_to(await qq.mention(999, 1, "warm up"))
        for number in range(bursts):
            await burst(qq, running, number, run)
        for index in range(SINGLES):
            sent_at = loop.time()
            answer = await qq.reply_to(await qq.mention(500, 1500, f"单独的问题{index}"))
            run.single_latencies.append(answer.received_at - sent_at)
    return run


def ms(values: list[float], fraction: float, minus: float = 0.0) -> str:
    return f"{(quantile(values, fraction) - minus) * 1000:.1f} ms"


async def main(bursts: int) -> None:
    with fake_glm(latency=UPSTREAM) as (fake, base_url):
        runs: dict[str, Run] = {}
        for name, script, settings in [
            ("echo bot", ECHO_BOT, {}),
            ("glm-chat, concurrency 5", "bot.py", {}),
            ("glm-chat, concurrency 20", "bot.py", {"GLM_MAX_CONCURRENCY": str(BURST)}),
        ]:
            with workdir() as folder:
                runs[name] = await drive(bot(base_url, folder, script, **settings), bursts)
        requests = len(fake.completions())
        tokens = len({r.headers["authorization"] for r in fake.completions()})

    echo = runs["echo bot"]
    print(f"cost: {bursts} bursts of {BURST} mentions, upstream {UPSTREAM}s ({machine()})")
    for name, run in runs.items():
        line = f"  {name:<25} CPU {summary(run.cpu_per_message, ' ms/msg', 1000)}"
        if run is not echo:
            line += f"; {run.mean_cpu / echo.mean_cpu:.2f} x the echo bot (target <= 2.5)"
        print(line)
    wide = runs["glm-chat, concurrency 20"]
    print(
        f"  added, bursts  p50 {ms(wide.burst_latencies, 0.5, UPSTREAM)}, "
        f"p99 {ms(wide.burst_latencies, 0.99, UPSTREAM)} over the upstream; the echo bot "
        f"answers a burst in p50 {ms(echo.burst_latencies, 0.5)}, "
        f"p99 {ms(echo.burst_latencies, 0.99)}"
    )
    print(
        f"  added, single  p50 {ms(wide.single_latencies, 0.5, UPSTREAM)}, "
        f"p99 {ms(wide.single_latencies, 0.99, UPSTREAM)} over the upstream; the echo bot "
        f"answers one in p50 {ms(echo.single_latencies, 0.5)}, "
        f"p99 {ms(echo.single_latencies, 0.99)}"
    )
    per_1000 = 1000 * tokens / requests
    print(f"  JWTs minted    {tokens} for {requests} requests ({per_1000:.2f} per 1000)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=40)
    asyncio.run(main(parser.parse_args().bursts))
