"""Bursts of mentions against a rate-limited upstream, and ``kill -9`` in the middle of one.

Nothing here depends on timing: the assertions are about what was answered and stored.
"""

import asyncio
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

from tests.e2e.conftest import ACCESS_TOKEN, SELF_ID
from tests.support.bot_process import RunningBot
from tests.support.fake_glm import FakeGLM
from tests.support.onebot_client import OneBotClient

GROUPS = 20
PER_GROUP = 10


def stored_turns(db_path: Path) -> dict[str, list[tuple[str, str]]]:
    """``conversation -> [(question, answer), ...]`` in the order they were stored."""
    turns: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for conversation, question, answer in db.execute(
            "SELECT conversation, question, answer FROM turns ORDER BY conversation, seq"
        ):
            turns[conversation].append((question, answer))
    return turns


async def burst(qq: OneBotClient, groups: int, per_group: int) -> dict[int, tuple[int, str]]:
    """Send every mention at once, round-robin over the groups; ``message id -> (group, text)``."""
    sent: dict[int, tuple[int, str]] = {}
    for index in range(per_group):
        for group in range(1, groups + 1):
            question = f"第{index}问"
            message_id = await qq.mention(group, 100 + group, question, nickname=f"u{group}")
            sent[message_id] = (group, question)
    return sent


def expected_answer(group: int, index: int) -> str:
    """The fake model's echo for a question that saw ``index`` earlier turns."""
    return f"回声#{2 + 2 * index}：u{group}({100 + group}): 第{index}问"


async def test_a_burst_is_answered_once_each_in_order_within_the_concurrency_limit(
    fake: FakeGLM, bot_env, log_path
):
    fake.latency = 0.05
    fake.max_in_flight = 5  # what the platform allows this account; more get 1302
    bot_env["GLM_MAX_CONCURRENCY"] = "5"
    async with RunningBot(bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        sent = await burst(qq, GROUPS, PER_GROUP)
        await qq.wait_for(len(sent), timeout=120)
        await asyncio.sleep(0.2)  # a duplicate answer would arrive now
    quoted = Counter(message.quotes() for message in qq.sent)
    assert set(quoted) == set(sent) and set(quoted.values()) == {1}
    for message in qq.sent:
        group, question = sent[message.quotes()]
        index = int(question[1:-1])
        assert message.group_id == group
        assert message.text == expected_answer(group, index)

    turns = stored_turns(Path(bot_env["GLM_DB_PATH"]))
    assert set(turns) == {f"group:{g}" for g in range(1, GROUPS + 1)}
    for group in range(1, GROUPS + 1):
        assert turns[f"group:{group}"] == [
            (f"第{i}问", expected_answer(group, i)) for i in range(PER_GROUP)
        ]
    assert fake.peak_in_flight <= 5 and fake.refused_1302 == 0


async def test_kill_9_mid_burst_leaves_whole_turns_and_the_bot_carries_on(
    fake: FakeGLM, bot_env, log_path
):
    fake.latency = 0.2
    db_path = Path(bot_env["GLM_DB_PATH"])
    running = RunningBot(bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN)
    async with running as qq:
        await burst(qq, 8, 5)
        await qq.wait_for(10, timeout=60)
        running.process.kill()  # kill -9: no shutdown hook, no checkpoint

    turns = stored_turns(db_path)  # integrity_check passes
    assert 0 < sum(map(len, turns.values())) < 40  # it really died mid-burst
    delivered = {message.text for message in qq.sent}
    assert all(answer in delivered for pairs in turns.values() for _, answer in pairs)
    for conversation, pairs in turns.items():
        group = int(conversation.split(":")[1])
        # Whole turns, in order, each answer the one its question got.
        assert pairs == [(f"第{i}问", expected_answer(group, i)) for i in range(len(pairs))]

    fake.latency = 0.0
    async with RunningBot(bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        for group in range(1, 9):
            asked = await qq.mention(group, 100 + group, "继续", nickname=f"u{group}")
            await qq.reply_to(asked)
            remembered = len(turns.get(f"group:{group}", []))
            assert len(fake.completions()[-1].messages) == 1 + 2 * remembered + 1
