"""What a busy group does at once, against ``python bot.py``: commands and questions sent while
an answer is still being written, personal mode, SIGTERM mid-answer, sends QQ refuses,
a connection that drops, and replies the QQ client cannot look up.

A slow answer is a request the fake server holds until the test releases it, so nothing here
depends on timing: every message is sent while the answer is known to be held.
"""

import signal
import sqlite3
from pathlib import Path

from tests.e2e.conftest import ACCESS_TOKEN, SELF_ID
from tests.support.bot_process import RunningBot
from tests.support.fake_glm import FakeGLM, Fault
from tests.support.onebot_client import OneBotClient, reply, text


def running(env: dict[str, str], log: Path) -> RunningBot:
    return RunningBot(env, log, self_id=SELF_ID, token=ACCESS_TOKEN)


def stored(db_path: str) -> list[tuple[str, str, str]]:
    """``(conversation, question, answer)`` of every stored turn, in order."""
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return list(
            db.execute(
                "SELECT conversation, question, answer FROM turns ORDER BY conversation, seq"
            )
        )


async def command(qq: OneBotClient, group: int, user: int, line: str, role: str = "admin") -> int:
    return await qq.group_message(group, user, [text(line)], role=role)


async def test_a_reset_during_an_answer_runs_right_after_it_and_later_questions_start_afresh(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        await qq.reply_to(await qq.mention(1, 111, "暗号是42", nickname="Alice"))
        fake.push(Fault("hold", body="很久以前……"))
        slow = await qq.mention(1, 111, "讲个长故事", nickname="Alice")
        await fake.wait_holding()
        reset = await command(qq, 1, 666, "/glm reset")
        first = await qq.mention(1, 222, "暗号是多少？", nickname="Bob")
        second = await qq.mention(1, 333, "他问了什么？", nickname="Carol")
        status = await command(qq, 1, 444, "/glm status", role="member")
        fake.release()
        replies = [await qq.reply_to(asked) for asked in (slow, reset, first, second, status)]

    # Each message was handled in the order it arrived, the commands included.
    assert [r.message_id for r in replies] == sorted(r.message_id for r in replies)
    assert replies[0].text == "很久以前……"
    assert replies[1].text == "上下文已清空（忘掉了 2 轮对话）。"
    # The first question after the reset carries nothing from before it; the second, only it.
    after_reset = fake.completions()[-2:]
    assert [m["content"] for m in after_reset[0].messages[1:]] == ["Bob(222): 暗号是多少？"]
    assert len(after_reset[1].messages) == 1 + 2 + 1
    assert "已记住 2 轮对话" in replies[4].text
    assert [question for _, question, _ in stored(bot_env["GLM_DB_PATH"])] == [
        "暗号是多少？",
        "他问了什么？",
    ]


async def test_in_personal_mode_members_do_not_wait_for_each_other(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        switched = await command(qq, 1, 666, "/glm mode personal")
        assert "每人一个上下文" in (await qq.reply_to(switched)).text
        fake.push(Fault("hold", body="慢慢想好了"))
        slow = await qq.mention(1, 111, "难题", nickname="Alice")
        await fake.wait_holding()
        quick = await qq.mention(1, 222, "简单题", nickname="Bob")
        quick_answer = await qq.reply_to(quick)  # answered while Alice's answer is held
        own_reset = await command(qq, 1, 222, "/glm reset", role="member")
        assert (await qq.reply_to(own_reset)).text == "上下文已清空（忘掉了 1 轮对话）。"
        looked = await command(qq, 1, 222, "/glm persona", role="member")
        assert (await qq.reply_to(looked)).text.startswith("当前人设")  # a look does not wait
        everyone = await command(qq, 1, 666, "/glm reset all")
        back = await command(qq, 1, 666, "/glm mode shared")
        fake.release()
        slow_answer = await qq.reply_to(slow)
        reset_all = await qq.reply_to(everyone)
        shared = await qq.reply_to(back)

    assert quick_answer.text == "回声#2：简单题"
    assert slow_answer.text == "慢慢想好了"
    # Group-wide commands waited for the answer in flight, then ran in their order.
    assert slow_answer.message_id < reset_all.message_id < shared.message_id
    assert reset_all.text == "上下文已清空（忘掉了 1 轮对话）。"
    assert stored(bot_env["GLM_DB_PATH"]) == []


async def test_sigterm_mid_answer_stops_the_bot_within_seconds_and_stores_nothing_half_done(
    fake: FakeGLM, bot_env, log_path
):
    bot = running(bot_env, log_path)
    try:
        async with bot as qq:
            await qq.reply_to(await qq.mention(1, 111, "第一问"))
            fake.push(Fault("hold"), Fault("hold"))
            await qq.mention(1, 111, "第二问")
            await qq.private_message(555, "私聊也在等")
            await fake.wait_holding(2)
            await command(qq, 1, 666, "/glm reset")  # queued behind the held answer
            await qq.mention(1, 111, "第三问")
            code, seconds = await bot.process.terminate()
    finally:
        fake.release()
    # uvicorn shuts down, then exits by the signal it caught, as a service manager expects.
    assert code in (0, -signal.SIGTERM) and seconds < 10, f"exit {code} after {seconds:.1f}s"
    assert stored(bot_env["GLM_DB_PATH"]) == [("group:1", "第一问", "回声#2：member(111): 第一问")]
    assert "Traceback" not in log_path.read_text("utf-8")


async def test_sigterm_with_members_lanes_busy_stops_the_bot_within_seconds(
    fake: FakeGLM, bot_env, log_path
):
    bot = running(bot_env, log_path)
    try:
        async with bot as qq:
            await qq.reply_to(await command(qq, 1, 666, "/glm mode personal"))
            fake.push(Fault("hold"), Fault("hold"))
            await qq.mention(1, 111, "Alice 一")
            await qq.mention(1, 222, "Bob 一")
            await fake.wait_holding(2)
            await qq.mention(1, 111, "Alice 二")  # queued in Alice's lane
            await command(qq, 1, 666, "/glm mode shared")  # waits for both lanes
            await qq.mention(1, 222, "Bob 二")  # behind the group-wide command
            code, seconds = await bot.process.terminate()
    finally:
        fake.release()
    assert code in (0, -signal.SIGTERM) and seconds < 10, f"exit {code} after {seconds:.1f}s"
    assert stored(bot_env["GLM_DB_PATH"]) == []
    assert "Traceback" not in log_path.read_text("utf-8")


async def test_an_answer_qq_refuses_is_not_remembered(fake: FakeGLM, bot_env, log_path):
    bot = running(bot_env, log_path)
    async with bot as qq:
        qq.refuse.add("send_msg")
        await qq.mention(1, 111, "这条回答发不出去")
        await bot.process.wait_for_log("QQ refused send")
        qq.refuse.clear()
        asked = await qq.mention(1, 111, "那这条呢？")
        assert (await qq.reply_to(asked)).text == "回声#2：member(111): 那这条呢？"
    log = log_path.read_text("utf-8")
    assert "QQ refused send: retcode=1200" in log and "Traceback" not in log
    assert [question for _, question, _ in stored(bot_env["GLM_DB_PATH"])] == ["那这条呢？"]


async def test_a_long_answer_whose_forward_and_pieces_are_refused_is_not_remembered(
    fake: FakeGLM, bot_env, log_path
):
    bot = running(bot_env, log_path)
    async with bot as qq:
        qq.refuse.update({"send_group_forward_msg", "send_msg"})
        fake.push(Fault("reply", body="很长的回答。" * 300))
        await qq.mention(1, 111, "讲长一点")
        await bot.process.wait_for_log("QQ refused send")
    log = log_path.read_text("utf-8")
    assert "QQ refused send_group_forward_msg" in log and "Traceback" not in log
    assert stored(bot_env["GLM_DB_PATH"]) == []


async def test_a_connection_lost_mid_answer_loses_the_answer_and_a_new_one_gets_it(
    fake: FakeGLM, bot_env, log_path
):
    bot = running(bot_env, log_path)
    async with bot as qq:
        # Lost: the QQ client is gone when the answer is ready.
        fake.push(Fault("hold", body="没人收到"))
        await qq.mention(1, 111, "问题一")
        await fake.wait_holding()
        await qq.close()
        fake.release()
        await bot.process.wait_for_log("send not delivered")
        await qq.connect()
        asked = await qq.mention(1, 111, "问题二")
        assert (await qq.reply_to(asked)).text == "回声#2：member(111): 问题二"

        # Handed over: the client came back before the answer was ready.
        fake.reset()
        fake.push(Fault("hold", body="重连后收到"))
        again = await qq.mention(1, 111, "问题三")
        await fake.wait_holding()
        await qq.close()
        await qq.connect()
        fake.release()
        assert (await qq.reply_to(again)).text == "重连后收到"
    assert [question for _, question, _ in stored(bot_env["GLM_DB_PATH"])] == ["问题二", "问题三"]
    assert "Traceback" not in log_path.read_text("utf-8")


async def test_a_reply_to_the_bot_is_answered_in_order_when_the_client_cannot_look_it_up(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        answer = await qq.reply_to(await qq.mention(1, 111, "第一问", nickname="Alice"))
        qq.refuse.add("get_msg")
        follow = await qq.group_message(
            1, 222, [reply(answer.message_id), text("接着说")], nickname="Bob"
        )
        after = await qq.mention(1, 333, "然后呢？", nickname="Carol")
        follow_answer = await qq.reply_to(follow)
        after_answer = await qq.reply_to(after)
    assert follow_answer.text == "回声#4：Bob(222): 接着说"
    assert after_answer.message_id > follow_answer.message_id
    assert after_answer.text == "回声#6：Carol(333): 然后呢？"
