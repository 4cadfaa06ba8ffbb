"""Issue-4 features from the outside: forward messages and their fallback, images, async task
mode, and several keys, against ``python bot.py`` over the reverse WebSocket."""

import base64
import sqlite3
from pathlib import Path

from tests.e2e.conftest import ACCESS_TOKEN, KEY_ID, KEY_SECRET, SELF_ID, SUPERUSER
from tests.support.bot_process import RunningBot
from tests.support.fake_glm import FakeGLM, Fault
from tests.support.onebot_client import Sent, at, reply, text

PARAGRAPH = "这一段讲一件事，" * 62 + "完。"  # 498 characters
LONG_ANSWER = "\n\n".join(f"{index}. {PARAGRAPH}" for index in range(10))  # 5018 characters


def node_texts(sent: Sent) -> list[str]:
    return [
        "".join(part["data"]["text"] for part in node["data"]["content"])
        for node in sent.params["messages"]
    ]


def running(env: dict[str, str], log: Path) -> RunningBot:
    return RunningBot(env, log, self_id=SELF_ID, token=ACCESS_TOKEN)


async def test_a_long_answer_is_a_forward_message_or_split_when_refused(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        fake.push(Fault("reply", body=LONG_ANSWER))
        story = await qq.mention(1, 111, "讲个长故事")
        forward = await qq.wait_until(lambda s: s.action == "send_group_forward_msg")
        assert forward.group_id == 1
        assert "\n\n".join(node_texts(forward)) == LONG_ANSWER
        pointer = await qq.reply_to(story)  # the asker is still told which answer is theirs
        assert pointer.message_id > forward.message_id

        qq.refuse.add("send_group_forward_msg")
        fake.push(Fault("reply", body=LONG_ANSWER))
        before = len(qq.sent)
        asked = await qq.mention(1, 111, "再讲一遍")
        first = await qq.reply_to(asked)
        pieces = [first, await qq.wait_until(lambda s: s.quotes() is None, after=before + 1)]
    assert all(len(piece.text) <= 4000 for piece in pieces)
    assert all(piece.text.endswith("完。") for piece in pieces)  # cut between paragraphs
    assert "\n\n".join(piece.text for piece in pieces) == LONG_ANSWER


async def test_images_reach_the_vision_model_and_never_the_database(
    fake: FakeGLM, bot_env, log_path
):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8).decode()
    url = "https://multimedia.example/photo.jpg"
    async with running(bot_env, log_path) as qq:
        asked = await qq.group_message(
            1,
            111,
            [
                at(SELF_ID),
                text(" 图里是什么？"),
                {"type": "image", "data": {"file": f"base64://{png}"}},
            ],
            nickname="Alice",
        )
        await qq.reply_to(asked)
        sent = fake.completions()[-1].body
        assert sent["model"] == "glm-4.6v-flash"
        assert sent["messages"][-1]["content"] == [
            {"type": "text", "text": "Alice(111): 图里是什么？"},
            {"type": "image_url", "image_url": {"url": png}},
        ]

        # An image in the message being replied to counts too.
        photo = await qq.group_message(
            1, 222, [{"type": "image", "data": {"file": "a.jpg", "url": url}}], nickname="Bob"
        )
        follow = await qq.group_message(
            1, 111, [reply(photo), at(SELF_ID), text(" 这张呢？")], nickname="Alice"
        )
        await qq.reply_to(follow)
        parts = fake.completions()[-1].body["messages"][-1]["content"]
        assert parts[1] == {"type": "image_url", "image_url": {"url": url}}

    with sqlite3.connect(bot_env["GLM_DB_PATH"]) as db:
        questions = [q for (q,) in db.execute("SELECT question FROM turns ORDER BY seq")]
        dump = "\n".join(db.iterdump())
    assert questions == ["图里是什么？ [图片]", "这张呢？ [图片]"]
    assert png[:40] not in dump and url not in dump


async def test_async_mode_creates_a_task_and_polls_it(fake: FakeGLM, bot_env, log_path):
    fake.latency = 1.2  # the task is PROCESSING for the first polls
    bot_env["GLM_CALL_MODE"] = "async"
    async with running(bot_env, log_path) as qq:
        asked = await qq.mention(1, 111, "异步也行吗")
        answer = await qq.reply_to(asked)
    assert answer.text == "回声#2：member(111): 异步也行吗"
    (created,) = fake.completions()
    assert created.path.endswith("/async/chat/completions") and "stream" not in created.body
    assert fake.polls >= 2


async def test_two_keys_share_the_traffic_and_a_spent_one_rests(fake: FakeGLM, bot_env, log_path):
    fake.keys["otherkey"] = "other-secret"
    bot_env["GLM_API_KEY"] = f'["{KEY_ID}.{KEY_SECRET}", "otherkey.other-secret"]'
    async with running(bot_env, log_path) as qq:
        for index in range(4):
            await qq.reply_to(await qq.mention(1, 111, f"问题{index}"))
        assert [r.token_claims["api_key"] for r in fake.completions()] == [
            KEY_ID,
            "otherkey",
        ] * 2

        fake.push(Fault("error", 429, "1113", "余额不足"))
        for index in range(3):
            await qq.reply_to(await qq.mention(2, 111, f"之后{index}"))
        after = [r.token_claims["api_key"] for r in fake.completions()[4:]]
        assert after == [KEY_ID, "otherkey", "otherkey", "otherkey"]

        stats = await qq.private_message(SUPERUSER, "/glm stats")
        report = await qq.wait_until(lambda s: s.user_id == SUPERUSER)
        del stats
    assert f"休息中的 Key：{KEY_ID}（1113" in report.text
    log = log_path.read_text("utf-8")
    assert f"rested={KEY_ID}:1113" in log and KEY_SECRET not in log
    assert "other-secret" not in log
