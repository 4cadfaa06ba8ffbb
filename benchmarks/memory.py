"""Memory: the bot's resident memory after 10 and after 5000 distinct conversations, sent in
batches of 50 (target: no more than 1.2 x), and against the echo bot after the same workload.

Each conversation is one group with one mention; a batch is 50 mentions in 50 new groups, the
next batch once all are answered.

    python -m benchmarks.memory [--conversations 5000]
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.common import ECHO_BOT, bot, fake_glm, machine, workdir
from tests.support.bot_process import RunningBot

BATCH = 50


async def rss_curve(running: RunningBot, conversations: int) -> dict[int, int]:
    """RSS (bytes) after the first 10 conversations, every 1000 more, and at the end."""
    curve: dict[int, int] = {}
    async with running as qq:
        done = 0
        while done < conversations:
            size = 10 if done == 0 else min(BATCH, conversations - done)
            before = len(qq.sent)
            for offset in range(size):
                group = 10_000 + done + offset
                await qq.mention(group, group, f"第{group}个会话的问题")
            await qq.wait_for(before + size, timeout=120)
            done += size
            if done == 10 or done == conversations or (done - 10) % 1000 == 0:
                await asyncio.sleep(0.5)  # let finished tasks be collected
                curve[done] = running.process.rss_bytes()
    return curve


async def main(conversations: int) -> None:
    with fake_glm() as (_, base_url):
        with workdir() as folder:
            glm = await rss_curve(bot(base_url, folder), conversations)
        with workdir() as folder:
            echo = await rss_curve(bot(base_url, folder, ECHO_BOT), conversations)
    mib = 2**20
    print(f"memory: distinct conversations in batches of {BATCH} ({machine()})")
    for count in sorted(glm):
        print(
            f"  after {count:>5} conversations  glm-chat {glm[count] / mib:6.1f} MiB, "
            f"echo bot {echo[count] / mib:6.1f} MiB"
        )
    print(
        f"  growth 10 -> {conversations}  glm-chat {glm[conversations] / glm[10]:.3f} x "
        f"(target <= 1.2), echo bot {echo[conversations] / echo[10]:.3f} x"
    )
    print(
        f"  glm-chat / echo bot after {conversations}  "
        f"{glm[conversations] / echo[conversations]:.2f} x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=5000)
    asyncio.run(main(parser.parse_args().conversations))
