"""Long memory: of the facts stated early in a long group conversation, how many are still in
the prompt at turn 200, with the running summary (GLM_SUMMARY=on) against dropping old turns
(GLM_SUMMARY=off, as before issue 9).

One group, six members, 200 questions to the bot (``@bot``), each after 0-2 plain messages of
the members among themselves (kept as background, carried with the next question). In turns
1-30, ``--facts`` facts are stated, each with a unique token (``老王的车牌号是XK-7Q2F``): most
told to the bot (``@bot 记住：...``), the others said in the group without @. The bot runs as
``python bot.py`` with its defaults (GLM_HISTORY_TURNS=20, GLM_CONTEXT_TOKENS=6000, summaries
as configured) against the fake GLM server; after each answer the benchmark waits until the
turn is stored and, with summaries on, the fold it calls for is done (as a person's pace
would allow). A fact is "in the prompt" of a request when its text (``X的Y是Z``) is in the
summary (the system message) or in one of the kept turns (the messages between the system
message and the new question).

No model can be called here, so the summaries come from two stand-ins, both rule-based:

- ``fold_reply`` (tests/support/fake_glm.py, the fake server's default): no judgment; the
  previous summary's lines plus every member line, the oldest dropped to fit the length asked.
- ``fact-keeping``: an ideal summarizer's upper bound; it knows the benchmark's fact statements
  by their form and keeps every one of them (oldest dropped only if they alone overflow), then
  fills what room is left with the newest other member lines.

A real model lies somewhere between: it has judgment, but it rewrites, and a fact in its
summary is not always word for word the fact stated.

    python -m benchmarks.long_memory [--turns 200] [--facts 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python benchmarks/long_memory.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CHATTER, KEY_ID, KEY_SECRET, bot, machine, workdir
from tests.support.fake_glm import FakeGLM, fold_reply, is_summary, served
from tests.support.onebot_client import text

GROUP = 4242
WINDOW = 20  # GLM_HISTORY_TURNS's default: the summarizer folds once more are outside
STATED_BY = 30  # facts are stated in the first turns
CHECKPOINTS = (31, 50, 75, 100, 150, 200)
SUMMARY_HEADER = re.compile(r"【更早的对话摘要[^】\n]*】\n")  # where the summary starts
MEMBERS = [
    (31001, "小明"),
    (31002, "阿强"),
    (31003, "Lily"),
    (31004, "老王"),
    (31005, "橘子"),
    (31006, "Kevin"),
]
SUBJECTS = ("小明", "阿强", "Lily", "老王", "橘子", "Kevin", "班长", "楼下的猫", "隔壁组", "我表哥")
ATTRIBUTES = (
    "车牌号",
    "工号",
    "宿舍门牌",
    "幸运数字",
    "游戏账号",
    "手机尾号",
    "暗号",
    "快递取件码",
    "会员卡号",
    "储物柜密码",
)
QUESTIONS = (
    "今天适合出去玩吗",
    "推荐一部周末看的电影",
    "帮我想个团建活动",
    "讲个冷笑话",
    "good morning 怎么翻译",
    "晚饭吃什么好",
    "怎么才能早点起床",
    "给我们群起个新名字",
    "Python 和 Java 哪个先学",
    "下雨天适合做什么",
    "帮我写一句生日祝福",
    "有什么好听的歌",
)
ANSWER = (
    "好的，我明白你的意思了。这个问题可以从几个方面来看：先想清楚自己最在意什么，"
    "再看时间和预算，最后挑一个大家都能接受的方案。如果还想细聊，随时叫我。"
)
FACT_STATEMENT = re.compile(r"(记住：|跟你们说，)")  # how the benchmark states its facts


# --- the conversation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    text: str  # "X的Y是Z": what is looked for in the prompt
    told: bool  # told to the bot (a question), or said in the group (background)
    turn: int


@dataclass
class Turn:
    number: int
    asker: tuple[int, str]
    question: str
    background: list[tuple[tuple[int, str], str]] = field(default_factory=list)


def conversation(turns: int, facts: int, seed: int = 9) -> tuple[list[Turn], list[Fact]]:
    """The script: ``turns`` questions, ``facts`` facts in turns 1..STATED_BY (a third said in
    the group rather than to the bot)."""
    rng = random.Random(seed)
    script = [
        Turn(
            number,
            rng.choice(MEMBERS),
            f"{rng.choice(QUESTIONS)}？",
            [(rng.choice(MEMBERS), rng.choice(CHATTER)) for _ in range(rng.choice((0, 1, 1, 2)))],
        )
        for number in range(1, turns + 1)
    ]
    pairs = rng.sample([(s, a) for s in SUBJECTS for a in ATTRIBUTES], facts)
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    stated: list[Fact] = []
    for index, (subject, attribute) in enumerate(pairs):
        token = f"{''.join(rng.choices(alphabet, k=2))}-{''.join(rng.choices(alphabet, k=4))}"
        turn = script[round(index * (min(STATED_BY, turns) - 1) / max(1, facts - 1))]
        told = index % 3 != 2
        fact = Fact(f"{subject}的{attribute}是{token}", told, turn.number)
        if told and not FACT_STATEMENT.search(turn.question):
            turn.question = f"记住：{fact.text}"
        else:  # said among the members, just before the question
            told = False
            fact = Fact(fact.text, False, turn.number)
            turn.background.append((rng.choice(MEMBERS), f"跟你们说，{fact.text}"))
        stated.append(fact)
    script[-1].question = "大家之前让你记住的事，你还记得哪些？"
    return script, stated


# --- the summarizers --------------------------------------------------------------------------


def keep_facts(body: dict[str, Any]) -> str:
    """An ideal summarizer's upper bound: every fact statement kept (the oldest dropped only if
    they alone overflow), then the newest other member lines in the room left."""
    ask = body["messages"][-1]["content"]
    previous = re.search(r"【已有摘要】\n(.*?)\n\n【新的对话】", ask, re.S)
    talk = re.search(r"【新的对话】\n(.*?)\n\n请把新的对话", ask, re.S)
    limit_match = re.search(r"不超过 (\d+) 字", ask)
    assert previous and talk and limit_match, ask
    limit = int(limit_match[1])
    lines = [] if previous[1] == "（还没有）" else previous[1].splitlines()
    lines += [line for line in talk[1].splitlines() if re.match(r"(?!助手|【)\S.*?: ", line)]
    facts = list(dict.fromkeys(line for line in lines if FACT_STATEMENT.search(line)))
    while facts and len("\n".join(facts)) > limit:
        facts.pop(0)
    others = [line for line in lines if not FACT_STATEMENT.search(line)]
    kept: list[str] = []
    for line in reversed(others):  # newest first, while they fit
        if len("\n".join([*facts, line, *kept])) > limit:
            break
        kept.insert(0, line)
    return "\n".join(facts + kept)


def replies(summarize: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    def reply(body: dict[str, Any]) -> str:
        return summarize(body) if is_summary(body) else ANSWER

    return reply


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    summary: str  # GLM_SUMMARY
    summarize: Callable[[dict[str, Any]], str]
    requests: list[dict[str, Any]] = field(default_factory=list)  # the answers' request bodies
    summary_calls: int = 0
    lagging: int = 0  # turns after which a fold was still not done after the wait
    seconds: float = 0.0


def caught_up(database: Path, turns: int, folding: bool) -> bool:
    """Whether ``turns`` turns are stored and, with summaries on, none is waiting to be
    folded (no more than WINDOW outside the summary)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
        chat = f"group:{GROUP}"
        ((stored,),) = db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?", (chat,))
        if stored < turns or not folding:
            return stored >= turns
        ((outside,),) = db.execute(
            "SELECT COUNT(*) FROM turns WHERE conversation = ? AND seq > IFNULL("
            " (SELECT upto FROM summaries WHERE conversation = ?), 0)",
            (chat, chat),
        )
        return outside <= WINDOW


async def wait_caught_up(database: Path, turns: int, folding: bool, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if caught_up(database, turns, folding):
                return True
        except sqlite3.OperationalError:  # not created yet, or busy
            pass
        await asyncio.sleep(0.02)
    return False


async def talk(run: Run, script: list[Turn]) -> None:
    fake = FakeGLM(keys={KEY_ID: KEY_SECRET}, reply=replies(run.summarize))
    started = time.monotonic()
    with served(fake) as base_url, workdir() as folder:
        async with bot(base_url, folder, GLM_SUMMARY=run.summary) as qq:
            for turn in script:
                for (user, name), said in turn.background:
                    await qq.group_message(GROUP, user, [text(said)], nickname=name)
                user, name = turn.asker
                asked = await qq.mention(GROUP, user, turn.question, nickname=name)
                await qq.reply_to(asked)
                folding = run.summary == "on"
                if not await wait_caught_up(folder / "glm.db", turn.number, folding):
                    run.lagging += 1
        run.requests = [r.body for r in fake.completions()]
        run.summary_calls = len(fake.summaries())
    run.seconds = time.monotonic() - started
    assert len(run.requests) == len(script), (run.label, len(run.requests))


# --- what the prompt holds --------------------------------------------------------------------


@dataclass
class Seen:
    in_summary: set[str]
    in_turns: set[str]
    kept_turns: int
    summary_chars: int
    prompt_chars: int

    @property
    def in_prompt(self) -> set[str]:
        return self.in_summary | self.in_turns


def content(message: dict[str, Any]) -> str:
    value = message.get("content", "")
    if isinstance(value, list):
        return " ".join(part.get("text", "") for part in value if isinstance(part, dict))
    return str(value)


def seen(body: dict[str, Any], facts: list[Fact]) -> Seen:
    messages = body["messages"]
    system = content(messages[0]) if messages[0]["role"] == "system" else ""
    header = SUMMARY_HEADER.search(system)
    summary = system[header.end() :] if header else ""
    kept = messages[1 if system else 0 : -1]
    turns_text = "\n".join(content(m) for m in kept)
    return Seen(
        {f.text for f in facts if f.text in summary},
        {f.text for f in facts if f.text in turns_text},
        sum(1 for m in kept if m["role"] == "user"),
        len(summary.strip()),
        sum(len(content(m)) for m in messages),
    )


def report(runs: list[Run], facts: list[Fact], turns: int) -> None:
    told = sum(f.told for f in facts)
    points = [point for point in CHECKPOINTS if point <= turns]
    if turns not in points:
        points.append(turns)
    print(
        f"long memory: {turns} turns in one group ({len(MEMBERS)} members, 0-2 plain messages"
        f" before each question), {len(facts)} facts stated in turns 1-{STATED_BY}"
        f" ({told} told to the bot, {len(facts) - told} said in the group);"
        f" GLM_HISTORY_TURNS=20, GLM_CONTEXT_TOKENS=6000 ({machine()})"
    )
    head = "".join(f"{f't{point}':>6}" for point in points)
    print(f"  facts in the prompt at turn      {head}   at turn {turns}: summary / kept turns")
    for run in runs:
        row = "".join(
            f"{len(seen(run.requests[point - 1], facts).in_prompt):>6}" for point in points
        )
        last = seen(run.requests[turns - 1], facts)
        told_in = sum(f.told for f in facts if f.text in last.in_prompt)
        print(
            f"  {run.label:<32} {row}   {len(last.in_summary)} / {len(last.in_turns)}"
            f" (told {told_in}/{told}, said {len(last.in_prompt) - told_in}/{len(facts) - told})"
        )
    print("  at the last turn:")
    for run in runs:
        last = seen(run.requests[turns - 1], facts)
        print(
            f"    {run.label:<30} {last.kept_turns} turns kept, summary {last.summary_chars}"
            f" chars, prompt {last.prompt_chars} chars; {run.summary_calls} summary calls;"
            f" {run.lagging} turns where the fold lagged; {run.seconds:.0f} s"
        )
    print(
        "  fold_reply: the fake server's default summarizer (no judgment: keeps the newest member"
        " lines); fact-keeping: an ideal summarizer's upper bound (keeps every fact statement)."
        " Both are rule-based stand-ins for a real model. A fact said in the group goes with the"
        " next question's turn, and past turns carry their background only while among the"
        " newest few: until that turn is folded, such a fact is in neither place."
    )


async def main(turns: int, facts: int) -> None:
    script, stated = conversation(turns, facts)
    runs = [
        Run("GLM_SUMMARY=off (dropping)", "off", fold_reply),
        Run("on, fold_reply (no judgment)", "on", fold_reply),
        Run("on, fact-keeping (ideal bound)", "on", keep_facts),
    ]
    for run in runs:
        await talk(run, script)
    report(runs, stated, turns)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--facts", type=int, default=20)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.turns, arguments.facts))
