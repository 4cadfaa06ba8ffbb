"""Reading along: the bot's CPU per plain group message (one not addressed to it, kept as
background) against NoneBot's echo floor (target <= 1.5 x), and its memory with those messages
spread over 10 groups against over 5000 groups (target: flat, <= 1.1 x).

The floor is a NoneBot bot (same driver, adapter and settings file as ``benchmarks/echo_bot``)
whose one matcher echoes *every* message it receives, quoting it, as the echo bot of
``benchmarks.cost`` echoes every mention: the least a bot that does something with each message
costs. The stock echo bot, whose ``to_me`` rule turns plain messages away, is measured too (the
"idle floor": NoneBot parsing a message and checking one matcher), and so is glm-chat with
reading along off (``GLM_BACKGROUND_MESSAGES=0``).

CPU: the four bots run at once, each on a fresh database; round after round, a block of plain
messages (chatter from several members over 20 groups) goes to each bot in turn (the order
rotates), and a bot's CPU for the block is read once it has gone quiet (its echoes received,
its write-behind done). CPU is the sum of its threads' run time (``/proc/PID/task/*/schedstat``,
nanoseconds: aiosqlite works in a thread of its own); the clock-tick total from ``/proc/PID/stat``
(what ``benchmarks.cost`` reads) gives the over-all ratio as a cross-check. A second workload
sends the same bots one message every ``--interval`` seconds, each, for ``--paced`` seconds: a
quiet group's pace, where every message is written on its own (FLUSH_DELAY is 0.2 s).

Memory: two glm-chat bots, reading along on. After a warm-up (the same for both), each gets the
same number of plain messages in batches of BATCH, each closed by a question in group 1 whose
answer is awaited (a question waits for every message before it to be settled, and its reads
queue behind theirs: the bot keeps up rather than buffering); one bot's messages go to 10
groups, the other's to 5000. RSS at the end, the database's size and rows kept per group.

    python -m benchmarks.reading [--rounds 12] [--block 400] [--paced 30] [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sqlite3
import statistics
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack, closing, suppress
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python benchmarks/reading.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CHATTER, ECHO_BOT, bot, fake_glm, machine, summary, workdir
from tests.support.bot_process import BotProcess, RunningBot
from tests.support.onebot_client import OneBotClient, at, text

GROUPS = 20  # groups the CPU workload is spread over
NAMES = ("小明", "阿强", "Lily", "老王", "momo", "张三", "橘子", "Kevin", "二狗", "夏天")
BATCH = 50  # memory workload: plain messages between two answered questions


# --- the bots ---------------------------------------------------------------------------------


@dataclass
class Subject:
    """One bot under measurement."""

    name: str
    running: RunningBot
    echoes: bool  # answers every plain message (then a block ends when all are answered)
    qq: OneBotClient | None = None
    per_message: list[float] = field(default_factory=list)  # CPU s per message, by block
    paced: list[float] = field(default_factory=list)
    ticks: float = 0.0  # CPU s by /proc/PID/stat over the rounds
    messages: int = 0

    @property
    def process(self) -> BotProcess:
        return self.running.process


def cpu_ns(pid: int) -> int:
    """Run time of every live thread of ``pid`` (ns; Linux ``schedstat``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(FileNotFoundError, ProcessLookupError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


async def quiet(process: BotProcess, least: float = 0.4) -> None:
    """Until the bot has used (almost) no CPU for 0.15 s, after ``least`` seconds (which cover
    the write-behind's delay)."""
    await asyncio.sleep(least)
    before = cpu_ns(process.pid)
    while True:
        await asyncio.sleep(0.15)
        now = cpu_ns(process.pid)
        if now - before < 1_000_000:
            return
        before = now


# --- the messages -----------------------------------------------------------------------------


def plain(index: int) -> list[dict]:
    """The ``index``-th plain message: chatter, now and then with an @ of another member or an
    image."""
    rng = random.Random(index)
    said = rng.choice(CHATTER)
    if rng.random() < 0.3:
        said += "，" + rng.choice(CHATTER)
    segments = [text(said)]
    if rng.random() < 0.1:
        segments.insert(0, at(20_000 + rng.randrange(40)))
    if rng.random() < 0.05:
        segments.append({"type": "image", "data": {"file": f"{index}.jpg", "url": ""}})
    return segments


async def post(qq: OneBotClient, index: int, group: int) -> None:
    # 997 members: the same member in the same group again only every ~10k messages (the bot
    # takes one member saying the same text twice in a second for one message received twice)
    user = 20_000 + index % 997
    await qq.group_message(group, user, plain(index), nickname=NAMES[user % len(NAMES)])


counter = itertools.count()


async def block(subject: Subject, count: int) -> float:
    """``count`` plain messages over GROUPS groups; the bot's CPU seconds per message."""
    qq, process = subject.qq, subject.process
    assert qq is not None
    before_sent = len(qq.sent)
    before = cpu_ns(process.pid)
    for _ in range(count):
        index = next(counter)
        await post(qq, index, 1 + index % GROUPS)
    if subject.echoes:
        await qq.wait_for(before_sent + count, timeout=120)
    await quiet(process)
    return (cpu_ns(process.pid) - before) / 1e9 / count


async def paced(subjects: list[Subject], seconds: float, interval: float, blocks: int) -> None:
    """One message every ``interval`` seconds to each bot (staggered) for ``seconds``; CPU per
    message in ``blocks`` windows."""
    loop = asyncio.get_running_loop()
    sent = dict.fromkeys(range(len(subjects)), 0)

    async def feed(number: int, subject: Subject) -> None:
        assert subject.qq is not None
        await asyncio.sleep(interval * number / len(subjects))
        start = loop.time()
        while (at_ := start + sent[number] * interval) < start + seconds:
            await asyncio.sleep(max(0.0, at_ - loop.time()))
            index = next(counter)
            await post(subject.qq, index, 1 + index % GROUPS)
            sent[number] += 1

    feeders = [asyncio.create_task(feed(n, s)) for n, s in enumerate(subjects)]
    window = seconds / blocks
    marks = [(cpu_ns(s.process.pid), sent[n]) for n, s in enumerate(subjects)]
    for step in range(blocks):
        if step == blocks - 1:
            await asyncio.gather(*feeders)
            await asyncio.sleep(0.4)  # the last write-behind
        else:
            await asyncio.sleep(window)
        for number, subject in enumerate(subjects):
            cpu, count = cpu_ns(subject.process.pid), sent[number]
            if count > marks[number][1]:
                subject.paced.append((cpu - marks[number][0]) / 1e9 / (count - marks[number][1]))
            marks[number] = (cpu, count)


def subjects_in(base_url: str, folders: list[Path]) -> list[Subject]:
    floor, idle, on, off = folders
    return [
        Subject(
            "echo floor (echoes each)", bot(base_url, floor, ECHO_BOT, ECHO_EVERY_MESSAGE="1"), True
        ),
        Subject("idle floor (to_me echo bot)", bot(base_url, idle, ECHO_BOT), False),
        Subject("glm-chat, reading along on", bot(base_url, on), False),
        Subject(
            "glm-chat, reading along off", bot(base_url, off, GLM_BACKGROUND_MESSAGES="0"), False
        ),
    ]


async def cpu_part(rounds: int, size: int, paced_seconds: float, interval: float) -> list[Subject]:
    with fake_glm() as (_, base_url), ExitStack() as folders:
        subjects = subjects_in(base_url, [folders.enter_context(workdir()) for _ in range(4)])
        async with AsyncExitStack() as running:
            for subject in subjects:
                subject.qq = await running.enter_async_context(subject.running)
            for subject in subjects:  # warm up: imports, first options read, first write
                assert subject.qq is not None
                if subject.name.startswith("glm"):
                    await subject.qq.reply_to(await subject.qq.mention(999, 1, "warm up"))
                await block(subject, size)
            before = {s.name: s.process.cpu_seconds() for s in subjects}
            for number in range(rounds):
                shift = number % len(subjects)
                for subject in subjects[shift:] + subjects[:shift]:
                    subject.per_message.append(await block(subject, size))
                    subject.messages += size
            for subject in subjects:
                subject.ticks = subject.process.cpu_seconds() - before[subject.name]
            if paced_seconds > 0:
                await paced(subjects, paced_seconds, interval, blocks=3)
    return subjects


# --- memory -----------------------------------------------------------------------------------


@dataclass
class Spread:
    """The memory workload over ``groups`` groups."""

    groups: int
    running: RunningBot
    folder: Path
    rss_warm: int = 0
    rss_end: int = 0
    cpu: float = 0.0  # CPU seconds over the measured messages (batches' round trips included)
    db_bytes: int = 0  # the file and its WAL
    background_bytes: int = 0  # the background table and its indexes
    rows: list[int] = field(default_factory=list)  # background rows of each group kept


async def feed_batches(qq: OneBotClient, first: int, count: int, group_of: Callable) -> None:
    """``count`` plain messages in batches of BATCH, each closed by a question answered (a
    question waits until every message that came before it is settled, and its answer needs
    the database, after the reads those messages queued: so the bot keeps up instead of
    buffering what it is sent)."""
    for start in range(0, count, BATCH):
        for offset in range(min(BATCH, count - start)):
            index = first + start + offset
            await post(qq, index, group_of(index))
        await qq.reply_to(await qq.mention(1, 1, f"第{start}批之后的问题"), timeout=120)


async def memory_run(spread: Spread, messages: int, warmup: int) -> None:
    async with spread.running as qq:
        process = spread.running.process
        await qq.reply_to(await qq.mention(999, 1, "warm up"))
        await feed_batches(qq, 0, warmup, lambda index: 1 + index % 10)
        await quiet(process)
        await asyncio.sleep(0.5)
        spread.rss_warm = process.rss_bytes()
        before = process.cpu_seconds()
        await feed_batches(qq, warmup, messages, lambda index: 1 + index % spread.groups)
        await quiet(process)
        await asyncio.sleep(0.5)
        spread.cpu = process.cpu_seconds() - before
        spread.rss_end = process.rss_bytes()
    database = spread.folder / "glm.db"
    spread.db_bytes = sum(
        path.stat().st_size
        for path in (database, database.with_name("glm.db-wal"))
        if path.exists()
    )
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        spread.rows = [n for (n,) in db.execute("SELECT COUNT(*) FROM background GROUP BY chat")]
        (spread.background_bytes,) = db.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN"
            " (SELECT name FROM sqlite_schema WHERE tbl_name = 'background')"
        ).fetchone()


async def memory_part(messages: int, warmup: int) -> list[Spread]:
    with fake_glm() as (_, base_url), workdir() as few, workdir() as many:
        spreads = [
            Spread(10, bot(base_url, few), few),
            Spread(5000, bot(base_url, many), many),
        ]
        await asyncio.gather(*(memory_run(spread, messages, warmup) for spread in spreads))
    return spreads


# --- the report -------------------------------------------------------------------------------


def report_cpu(
    subjects: list[Subject], rounds: int, size: int, paced_seconds: float, interval: float
) -> None:
    floor, idle, on, off = subjects
    print(
        f"reading along, CPU: {rounds} rounds of a block of {size} plain messages over {GROUPS}"
        f" groups to each of four bots ({machine()})"
    )
    for subject in subjects:
        print(f"  {subject.name:<30} {summary(subject.per_message, ' ms/msg', 1000)}")

    def ratios(a: Subject, b: Subject, values: Callable[[Subject], list[float]]) -> str:
        by_round = [x / y for x, y in zip(values(a), values(b), strict=True)]
        return summary(by_round, " x")

    def total(a: Subject, b: Subject) -> str:
        return f"{(a.ticks / a.messages) / (b.ticks / b.messages):.2f} x"

    per = lambda s: s.per_message  # noqa: E731
    print(
        f"  on / echo floor    {ratios(on, floor, per)} by round; {total(on, floor)} over all"
        " by clock ticks (target <= 1.5)"
    )
    print(f"  off / echo floor   {ratios(off, floor, per)} by round; {total(off, floor)} over all")
    print(f"  on / off           {ratios(on, off, per)} by round; {total(on, off)} over all")
    print(f"  on / idle floor    {ratios(on, idle, per)} by round; {total(on, idle)} over all")
    if paced_seconds > 0:
        print(
            f"  paced: one message every {interval}s to each bot for {paced_seconds:.0f}s"
            " (each written on its own), 3 windows"
        )
        for subject in subjects:
            print(f"    {subject.name:<28} {summary(subject.paced, ' ms/msg', 1000)}")
        pace = lambda s: s.paced  # noqa: E731
        print(f"    on / echo floor  {ratios(on, floor, pace)} by window (target <= 1.5)")
        print(f"    on / off         {ratios(on, off, pace)} by window")


def report_memory(spreads: list[Spread], messages: int, warmup: int) -> None:
    few, many = spreads
    mib = 2**20
    print(
        f"reading along, memory: {warmup} plain messages over 10 groups to warm up, then"
        f" {messages} in batches of {BATCH}, over 10 or over 5000 groups"
    )
    for spread in spreads:
        rows = spread.rows
        print(
            f"  over {spread.groups:>4} groups  RSS {spread.rss_warm / mib:6.1f} ->"
            f" {spread.rss_end / mib:6.1f} MiB ({spread.rss_end / spread.rss_warm:.3f} x);"
            f" CPU {spread.cpu / messages * 1000:.2f} ms/msg; database"
            f" {spread.db_bytes / mib:.2f} MiB (background {spread.background_bytes / mib:.2f});"
            f" {sum(rows)} rows kept in {len(rows)} groups"
            f" ({min(rows)}-{max(rows)} a group, median {statistics.median(rows):g})"
        )
    print(
        f"  5000 / 10 groups   RSS {many.rss_end / few.rss_end:.3f} x at the end (target <= 1.1);"
        f" growth since the warm-up {(many.rss_end - many.rss_warm) / mib:+.1f} MiB vs"
        f" {(few.rss_end - few.rss_warm) / mib:+.1f} MiB"
    )
    per_row = many.background_bytes / sum(many.rows)
    print(
        f"  CPU includes one answered question per {BATCH} messages (the database too, with its"
        f" turns); background takes {per_row:.0f} bytes a kept row (table and indexes): at most"
        f" ~{per_row * 5000 * 20 / mib:.0f} MiB for 5000 groups at the default 20 a group"
    )


def main(args: argparse.Namespace) -> None:
    if args.rounds > 0:
        subjects = asyncio.run(cpu_part(args.rounds, args.block, args.paced, args.interval))
        report_cpu(subjects, args.rounds, args.block, args.paced, args.interval)
    if args.messages > 0:
        spreads = asyncio.run(memory_part(args.messages, args.warmup))
        report_memory(spreads, args.messages, args.warmup)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=12, help="blocks to each bot (0: no CPU part)"
    )
    parser.add_argument("--block", type=int, default=400, help="plain messages a block")
    parser.add_argument(
        "--paced", type=float, default=30, help="seconds of paced messages (0: none)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.25, help="seconds between paced messages"
    )
    parser.add_argument("--messages", type=int, default=20_000, help="memory workload (0: none)")
    parser.add_argument(
        "--warmup", type=int, default=2000, help="messages before the memory workload"
    )
    main(parser.parse_args())
