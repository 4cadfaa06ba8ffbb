"""Console: the time of each console page and API route with 10,000 chats and 1,000,000 turns
stored (target: every page under 50 ms), and the bot's CPU per answered QQ message with the
console on against off, in the same run (target: no measurable difference).

The database is built once a day and cached in /tmp: the schema through ContextStore.open, then
one sqlite3 transaction whose rows the store's triggers count into ``usage_daily`` and
``chats``. Turns per chat follow Zipf's law (the biggest chat has ~100k turns, the smallest ~10),
on each chat's active days among the last 30, most in the evening; 15% of the chats are private;
a few groups are in personal mode (members' conversations ``group:G:U``, scope ``group:G``);
6% of the chats have settings. The bot runs on a copy, after 520 answered mentions have filled
its call log. Each route is timed over loopback with httpx (request sent to body read, one
kept-alive connection), all routes in turn, round after round; the bot's CPU per request comes
from a second pass. The cost part runs two bots at once, console on and off, each on a
fresh database, and sends benchmarks.cost's bursts of 20 mentions to each in turn.

    python -m benchmarks.console [--requests 50] [--rounds 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import nonebot

from benchmarks.common import bot, fake_glm, machine, quantile, summary, workdir
from benchmarks.cost import BURST, UPSTREAM, Run, burst
from benchmarks.store import ANSWER, QUESTION, fill
from tests.support.bot_process import BotProcess
from tests.support.onebot_client import OneBotClient

CHATS, TURNS, DAYS = 10_000, 1_000_000, 30
ZIPF = 1.0  # turns of the chat ranked r: proportional to 1 / r**ZIPF
PRIVATE_SHARE, SETTINGS_SHARE = 0.15, 0.06
PERSONAL_RANKS = (1, 8, 40, 200, 1000, 4000)  # the groups in personal mode, by rank
PLAYGROUND, PLAYGROUND_TURNS = "console:playground", 40
VERSION = 3  # of the data: a new version is a new cached file
CACHE = Path("/tmp")
DEFAULT_MODEL, OTHER_MODEL, VISION_MODEL = "glm-4-flash-250414", "glm-4-air-250414", "glm-4v-flash"
POOL = (QUESTION + ANSWER) * 100  # text that questions and answers are cut from
NICKNAMES = ("小明", "阿强", "Lily", "老王", "momo", "张三", "橘子", "Kevin", "二狗", "夏天")
HOUR_WEIGHTS = (5, 3, 2, 1, 1, 1, 2, 4, 6, 8, 9, 10, 10, 9, 9, 9, 10, 10, 11, 13, 15, 16, 14, 9)
CONSOLE_TOKEN = "console-bench-token-0123456789"
CALLS_LOGGED = 520  # the console keeps the last 500 calls
TARGET_MS = 50.0
BLOCK = 10  # rounds a cost figure is taken over


# --- the database ---------------------------------------------------------------------------


@dataclass
class Chat:
    key: str
    turns: int
    personal: bool = False
    model: str = DEFAULT_MODEL


def plan(rng: random.Random) -> list[Chat]:
    """The chats, biggest first; the playground last."""
    weights = [1 / (rank + 1) ** ZIPF for rank in range(CHATS)]
    scale = TURNS / sum(weights)
    counts = [max(1, int(weight * scale)) for weight in weights]
    counts[0] += TURNS - PLAYGROUND_TURNS - sum(counts)
    numbers = rng.sample(range(10**5, 10**9), CHATS)
    chats = []
    for rank, (count, number) in enumerate(zip(counts, numbers, strict=True)):
        personal = rank in PERSONAL_RANKS
        private = rank > 0 and not personal and rng.random() < PRIVATE_SHARE
        chats.append(Chat(f"{'private' if private else 'group'}:{number}", count, personal))
    return [*chats, Chat(PLAYGROUND, PLAYGROUND_TURNS)]


def settings(rng: random.Random, chats: list[Chat]) -> Iterator[tuple[object, ...]]:
    """``chat_settings`` rows for some chats (all in personal mode); sets ``Chat.model``."""
    for chat in chats[:-1]:
        if not chat.personal and rng.random() >= SETTINGS_SHARE:
            continue
        if rng.random() < 0.2:
            chat.model = OTHER_MODEL
        persona = text(rng, rng.randrange(20, 300)) if rng.random() < 0.5 else None
        model = chat.model if chat.model != DEFAULT_MODEL else None
        enabled = chat.personal or rng.random() >= 0.1
        yield chat.key, persona, model, chat.personal, enabled, rng.random() < 0.2


def text(rng: random.Random, length: int) -> str:
    start = rng.randrange(len(POOL) - length)
    return POOL[start : start + length]


def length(rng: random.Random, median: float, sigma: float, most: int) -> int:
    return max(2, min(most, int(rng.lognormvariate(math.log(median), sigma))))


def moments(rng: random.Random, count: int, midnights: list[float], now: float) -> list[float]:
    """``count`` times on the chat's active days (more days for a busier chat), oldest first."""
    active = rng.sample(midnights, min(DAYS, max(1, round(count**0.6))))
    times = []
    for hour in rng.choices(range(24), HOUR_WEIGHTS, k=count):
        at = rng.choice(active) + (hour + rng.random()) * 3600
        times.append(at if at < now else at - 86400 * rng.randrange(1, DAYS))  # not to come
    return sorted(times)


def turns(rng: random.Random, chat: Chat, midnights: list[float], now: float) -> list[tuple]:
    """A chat's turns, as ``turns`` rows. In personal mode, the first 30% were shared."""
    times = moments(rng, chat.turns, midnights, now)
    group = chat.key.startswith("group:")
    members = [rng.randrange(10**5, 3 * 10**9) for _ in range(min(300, 3 + chat.turns // 40))]
    speakers = rng.choices(members, [1 / (k + 1) for k in range(len(members))], k=chat.turns)
    shared_until = int(chat.turns * 0.3) if chat.personal else chat.turns
    seqs: dict[str, int] = {}
    rows = []
    for index, (at, member) in enumerate(zip(times, speakers, strict=True)):
        conversation = chat.key if index < shared_until else f"{chat.key}:{member}"
        seq = seqs[conversation] = seqs.get(conversation, 0) + 1
        shared = group and conversation == chat.key
        question = text(rng, length(rng, 24, 0.7, 2000))
        model = chat.model
        if group and rng.random() < 0.03:
            question, model = question + " [图片]", VISION_MODEL
        answer = text(rng, length(rng, 180, 0.8, 4000))
        prompt = min(6000, 40 + int(len(question) * 0.9) + min(seq - 1, 20) * 160)
        rows.append(
            (
                conversation,
                seq,
                str(member) if shared else None,
                NICKNAMES[member % len(NICKNAMES)] if shared else None,
                question,
                answer,
                model,
                prompt,
                5 + int(len(answer) * 0.7),
                at,
                None if chat.key == PLAYGROUND else chat.key,
            )
        )
    rows.sort(key=lambda row: (row[0], row[1]))  # members' conversations apart
    return rows


def build(path: Path) -> None:
    nonebot.init(_env_file=("benchmarks/echo_bot/.env.echo",))  # the plugin reads its config
    fill(path, 0)  # the schema, through ContextStore.open: migrations and triggers
    rng = random.Random(VERSION)
    chats = plan(rng)
    today, now = date.today(), time.time()
    midnights = [
        datetime.combine(today - timedelta(days=back), datetime.min.time()).timestamp()
        for back in range(DAYS)
    ]
    ordered = sorted(chats, key=lambda chat: chat.key)  # the table is clustered by conversation
    rows = (row for chat in ordered for row in turns(rng, chat, midnights, now))
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -400000"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO chat_settings (scope, persona, model, personal, enabled, web_search)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            settings(rng, chats),
        )
        db.executemany(
            "INSERT INTO turns (conversation, seq, speaker_id, speaker_name, question, answer,"
            " model, prompt_tokens, completion_tokens, created_at, scope)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = WAL")  # as the bot keeps it


def database() -> tuple[Path, float, bool]:
    """Today's database (built if need be): ``(path, seconds it took to build, just built)``."""
    path = CACHE / f"glm-console-bench-v{VERSION}-{date.today()}.db"
    record = path.with_suffix(".json")
    if path.exists() and record.exists():
        return path, json.loads(record.read_text())["build_seconds"], False
    for old in CACHE.glob("glm-console-bench-v*"):
        old.unlink()
    partial = path.with_suffix(".part")
    started = time.perf_counter()
    build(partial)
    seconds = time.perf_counter() - started
    partial.rename(path)
    record.write_text(json.dumps({"build_seconds": seconds}))
    return path, seconds, True


@dataclass
class Landmarks:
    """What the stored data holds, and the chats the routes show."""

    chats: int
    turns: int
    usage_rows: int
    biggest: tuple[str, int]
    personal: tuple[str, int]
    small: tuple[str, int]
    talkers: list[int]  # groups that answer (enabled, shared)


def landmarks(path: Path) -> Landmarks:
    with closing(sqlite3.connect(path)) as db:

        def one(sql: str) -> tuple:
            return db.execute(sql).fetchone()

        groups = "SELECT scope, turns FROM chats WHERE scope LIKE 'group:%' ORDER BY turns"
        shared = (
            "SELECT c.scope FROM chats c LEFT JOIN chat_settings s USING (scope)"
            " WHERE c.scope LIKE 'group:%' AND IFNULL(s.enabled, 1) AND NOT IFNULL(s.personal, 0)"
            " ORDER BY c.turns DESC LIMIT 200"
        )
        return Landmarks(
            *one("SELECT COUNT(*), SUM(turns) FROM chats"),
            one("SELECT COUNT(*) FROM usage_daily")[0],
            one(f"{groups} DESC LIMIT 1"),
            one(
                "SELECT scope, turns FROM chats JOIN chat_settings USING (scope)"
                " WHERE personal ORDER BY turns DESC LIMIT 1"
            ),
            one(f"{groups}, scope LIMIT 1"),
            [int(scope.partition(":")[2]) for (scope,) in db.execute(shared)],
        )


# --- the routes -------------------------------------------------------------------------------


@dataclass
class Route:
    label: str
    path: str
    times: list[float] = field(default_factory=list)
    cpu: float = 0.0  # the bot's CPU seconds per request
    size: int = 0

    @property
    def api(self) -> bool:
        return self.path.startswith("/glm/api/")

    def verdict(self) -> str:
        if self.path.startswith("/glm/static/"):
            return "(floor)"
        if quantile(self.times, 0.95) * 1000 < TARGET_MS:
            return "pass"
        return "FAIL" if quantile(self.times, 0.5) * 1000 >= TARGET_MS else "FAIL at p95"


def routes(marks: Landmarks) -> list[Route]:
    (big, big_turns), (personal, personal_turns), (small, small_turns) = (
        marks.biggest,
        marks.personal,
        marks.small,
    )
    narrow = big.partition(":")[2][:5]
    deep = 150
    return [
        Route("static file: the floor", "/glm/static/console.css"),
        Route("overview", "/glm/"),
        Route("chats, page 1", "/glm/chats"),
        Route(f"chats, page {deep}", f"/glm/chats?p={deep}"),
        Route("chats, search (few hits)", f"/glm/chats?q={narrow}"),
        Route("chats, search 'private'", "/glm/chats?q=private"),
        Route(f"chat, biggest ({big_turns:,} turns)", f"/glm/chats/{big}"),
        Route(f"chat, personal ({personal_turns:,})", f"/glm/chats/{personal}"),
        Route(f"chat, small ({small_turns} turns)", f"/glm/chats/{small}"),
        Route("usage, 14 days", "/glm/usage?days=14"),
        Route("usage, 90 days", "/glm/usage?days=90"),
        Route("usage.csv, 30 days", "/glm/usage.csv"),
        Route("calls", "/glm/calls"),
        Route("playground", "/glm/playground"),
        Route("API overview", "/glm/api/overview"),
        Route("API chats", "/glm/api/chats"),
        Route(f"API chats, page {deep}", f"/glm/api/chats?offset={(deep - 1) * 50}"),
        Route("API chats, search", f"/glm/api/chats?q={narrow}"),
        Route("API chat, biggest", f"/glm/api/chats/{big}"),
        Route("API chat, personal", f"/glm/api/chats/{personal}"),
        Route("API chat, small", f"/glm/api/chats/{small}"),
        Route("API usage, 14 days", "/glm/api/usage?days=14"),
        Route("API usage, 90 days", "/glm/api/usage?days=90"),
        Route("API calls", "/glm/api/calls"),
    ]


def time_routes(process: BotProcess, timed: list[Route], requests: int, warmup: int) -> None:
    """Round after round of every route (noise spreads evenly), then each route's CPU."""
    bearer = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{process.port}", timeout=60) as client:
        login = client.get("/glm/login", params={"token": CONSOLE_TOKEN})
        assert login.status_code == 303 and "glm_console" in client.cookies, login

        def get(route: Route) -> httpx.Response:
            response = client.get(route.path, headers=bearer if route.api else None)
            if response.status_code != 200:
                raise RuntimeError(f"{route.path}: {response.status_code} {response.text[:300]}")
            return response

        for _ in range(warmup):
            for route in timed:
                route.size = len(get(route).content)
        for _ in range(requests):
            for route in timed:
                started = time.perf_counter()
                get(route)
                route.times.append(time.perf_counter() - started)
        for route in timed:
            before = process.cpu_seconds()
            for _ in range(requests):
                get(route)
            route.cpu = (process.cpu_seconds() - before) / requests


async def fill_call_log(qq: OneBotClient, groups: list[int]) -> None:
    before = len(qq.sent)
    for index in range(CALLS_LOGGED):
        await qq.mention(groups[index % len(groups)], 20_000 + index, f"控制台基准的问题{index}")
    await qq.wait_for(before + CALLS_LOGGED, timeout=300)
    await asyncio.sleep(1)  # the last turns are written after QQ took the answers


async def time_console(folder: Path, timed: list[Route], marks: Landmarks, **counts: int) -> None:
    with fake_glm() as (_, base_url):
        running = bot(base_url, folder, GLM_CONSOLE_TOKEN=CONSOLE_TOKEN)
        async with running as qq:
            await fill_call_log(qq, marks.talkers)
            await asyncio.to_thread(time_routes, running.process, timed, **counts)


# --- the cost of answering, console on and off ----------------------------------------------


async def console_cost(rounds: int) -> dict[str, Run]:
    """Two bots at once, console on and off, each on a fresh database: round after round, a
    burst to each (which goes first alternates), so both meet the same noise."""
    with fake_glm(latency=UPSTREAM) as (_, base_url), workdir() as on, workdir() as off:
        bots = {
            setting: bot(base_url, folder, GLM_CONSOLE=setting, GLM_CONSOLE_TOKEN=CONSOLE_TOKEN)
            for setting, folder in (("on", on), ("off", off))
        }
        runs = {setting: Run() for setting in bots}
        async with bots["on"] as on_qq, bots["off"] as off_qq:
            clients = {"on": on_qq, "off": off_qq}
            for qq in clients.values():
                await qq.reply_to(await qq.mention(999, 1, "warm up"))
            for number in range(rounds):
                for setting in ("on", "off") if number % 2 == 0 else ("off", "on"):
                    await burst(clients[setting], bots[setting], number, runs[setting])
    return runs


# --- the report -------------------------------------------------------------------------------


def report(marks: Landmarks, built: str, timed: list[Route], requests: int, warmup: int) -> None:
    print(
        f"console: {marks.chats:,} chats, {marks.turns:,} turns, {marks.usage_rows:,} usage rows"
        f" ({built}); {requests} requests a route after {warmup} to warm up ({machine()})"
    )
    print(
        f"  {'route':<30} {'path':<44} {'median':>8} {'p95':>8} {'bot CPU':>8} {'size':>9}"
        f"  target {TARGET_MS:.0f} ms"
    )
    for route in timed:
        median, p95 = (quantile(route.times, q) * 1000 for q in (0.5, 0.95))
        print(
            f"  {route.label:<30} {route.path[:44]:<44} {median:6.1f}ms {p95:6.1f}ms"
            f" {route.cpu * 1000:6.1f}ms {route.size / 1024:6.1f}KiB  {route.verdict()}"
        )
    judged = [route for route in timed if route.verdict() != "(floor)"]
    failed = [route.label for route in judged if route.verdict() != "pass"]
    print(
        f"  {len(judged) - len(failed)} of {len(judged)} routes under {TARGET_MS:.0f} ms at p95"
        + (f"; over: {', '.join(failed)}" if failed else "")
    )


def report_cost(runs: dict[str, Run], rounds: int) -> None:
    """CPU per message in blocks of BLOCK rounds (a tick is 10 ms: single bursts are too
    coarse), and the on/off ratio of each block."""
    blocks = {
        setting: [
            sum(run.cpu_per_message[first : first + BLOCK]) / BLOCK
            for first in range(0, len(run.cpu_per_message) - BLOCK + 1, BLOCK)
        ]
        for setting, run in runs.items()
    }
    ratios = [on / off for on, off in zip(blocks["on"], blocks["off"], strict=True)]
    print(
        f"  cost of answering: bot CPU per answered mention, {rounds} rounds of a burst of"
        f" {BURST} to each of two bots, console on and off, upstream {UPSTREAM}s;"
        f" in blocks of {BLOCK} rounds"
    )
    for setting, values in blocks.items():
        print(f"    console {setting:<3} {summary(values, ' ms/msg', 1000)}")
    total = runs["on"].mean_cpu / runs["off"].mean_cpu
    print(
        f"    on / off     {summary(ratios, ' x')} by block; {total:.3f} x over all"
        " (target: 1, within the noise)"
    )


def main(requests: int, warmup: int, rounds: int) -> None:
    path, seconds, fresh = database()
    built = f"built in {seconds:.0f} s" if fresh else f"cached, built in {seconds:.0f} s"
    built += f", {path.stat().st_size / 2**30:.2f} GiB"
    with workdir() as folder:
        shutil.copyfile(path, folder / "glm.db")
        marks = landmarks(folder / "glm.db")
        timed = routes(marks)
        asyncio.run(time_console(folder, timed, marks, requests=requests, warmup=warmup))
    runs = asyncio.run(console_cost(rounds))
    report(marks, built, timed, requests, warmup)
    report_cost(runs, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed requests a route")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests a route first")
    parser.add_argument("--rounds", type=int, default=100, help="bursts to each bot")
    arguments = parser.parse_args()
    main(arguments.requests, arguments.warmup, arguments.rounds)
