"""Throughput at Zhipu's concurrency limit.

200 mentions over 40 groups, upstream latency 0.5 s, the server refusing a 6th request in flight
with 1302: the makespan (first mention sent to last answer received) against the ideal
``N / C x latency`` (target <= 1.10), the 1302s met, and the JWTs minted.

    python -m benchmarks.throughput [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.common import bot, fake_glm, machine, summary, workdir

MENTIONS, GROUPS, LATENCY, LIMIT = 200, 40, 0.5, 5


async def one_run() -> tuple[float, int, int, int]:
    """``(makespan_s, refused_1302, requests, distinct_tokens)`` of one run."""
    with fake_glm(latency=LATENCY, max_in_flight=LIMIT) as (fake, base_url), workdir() as folder:
        async with bot(base_url, folder, GLM_MAX_CONCURRENCY=str(LIMIT)) as qq:
            # Warm up (imports, first connection) outside the measurement.
            await qq.reply_to(await qq.mention(999, 1, "warm up"))
            fake.clear()
            start = time.monotonic()
            for index in range(MENTIONS):
                group = 1 + index % GROUPS
                await qq.mention(group, 1000 + group, f"问题{index}")
            answers = await qq.wait_for(1 + MENTIONS, timeout=300)
            makespan = answers[-1].received_at - start
        tokens = {r.headers["authorization"] for r in fake.completions()}
        return makespan, fake.refused_1302, len(fake.completions()), len(tokens)


async def main(runs: int) -> None:
    ideal = MENTIONS / LIMIT * LATENCY
    results = [await one_run() for _ in range(runs)]
    makespans = [r[0] for r in results]
    print(
        f"throughput: {MENTIONS} mentions over {GROUPS} groups, upstream {LATENCY}s, "
        f"limit {LIMIT} in flight ({machine()})"
    )
    print(f"  makespan      {summary(makespans, 's')}; ideal {ideal:.1f}s")
    print(f"  ratio         {summary([m / ideal for m in makespans])} (target <= 1.10)")
    print(f"  1302 met      {[r[1] for r in results]} per run")
    print(
        f"  JWTs minted   {[r[3] for r in results]} per run of {MENTIONS} requests "
        "(a token is reused for 180 s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
