"""``python bot.py`` in a subprocess, driven over the OneBot v11 reverse WebSocket, talking to
the fake GLM server over real HTTP, with its context in a real SQLite file."""

from tests.e2e.conftest import ACCESS_TOKEN, KEY_ID, KEY_SECRET, SELF_ID
from tests.support.bot_process import RunningBot
from tests.support.fake_glm import Fault
from tests.support.onebot_client import reply, text


async def test_a_group_conversation_is_shared_kept_apart_and_survives_a_restart(
    fake, bot_env, log_path
):
    async with RunningBot(bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        first = await qq.mention(1, 111, "我叫Alice", nickname="Alice")
        answer = await qq.reply_to(first)
        assert answer.group_id == 1 and answer.text == "回声#2：Alice(111): 我叫Alice"

        second = await qq.mention(1, 222, "我叫什么？", nickname="Bob")
        await qq.reply_to(second)
        sent = fake.completions()[-1].messages
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[1:] == [
            {"role": "user", "content": "Alice(111): 我叫Alice"},
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": "Bob(222): 我叫什么？"},
        ]
        assert fake.completions()[-1].token_claims["api_key"] == KEY_ID

        elsewhere = await qq.mention(2, 111, "另一个群", nickname="Alice")
        await qq.reply_to(elsewhere)
        assert len(fake.completions()[-1].messages) == 2  # group 2 knows nothing of group 1

        # Replying to the bot's message, without an @, also asks it.
        bots_answer = await qq.reply_to(second)
        follow_up = await qq.group_message(
            1, 333, [reply(bots_answer.message_id), text("接着说")], nickname="Carol"
        )
        await qq.reply_to(follow_up)
        assert fake.completions()[-1].messages[-1]["content"] == "Carol(333): 接着说"

        # So does calling it by its NICKNAME.
        called = await qq.group_message(4, 111, [text("小智，在吗")], nickname="Alice")
        await qq.reply_to(called)
        assert fake.completions()[-1].messages[-1]["content"] == "Alice(111): 在吗"

        before = len(qq.sent)
        await qq.private_message(555, "私聊你好")
        private = await qq.wait_until(lambda s: s.user_id == 555, after=before)
        assert private.text == "回声#2：私聊你好" and private.quotes() is None

        # Model text that tries to @everyone stays plain text.
        fake.push(Fault("reply", body="[CQ:at,qq=all] 全体注意"))
        attempt = await qq.mention(3, 111, "喊一下大家")
        shout = await qq.reply_to(attempt)
        assert [s["type"] for s in shout.segments] == ["reply", "text"]
        assert shout.text == "[CQ:at,qq=all] 全体注意"

        refused = await qq.group_message(1, 444, [text("/glm reset")], role="member")
        assert (await qq.reply_to(refused)).text == "只有群主、管理员或机器人主人可以这样做。"

    async with RunningBot(bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        again = await qq.mention(1, 111, "还记得我吗？", nickname="Alice")
        await qq.reply_to(again)
        sent = fake.completions()[-1].messages
        assert len(sent) == 1 + 2 * 3 + 1  # system, three remembered turns, the question
        assert sent[1]["content"] == "Alice(111): 我叫Alice"

        reset = await qq.group_message(1, 666, [text("/glm reset")], role="admin")
        assert (await qq.reply_to(reset)).text == "上下文已清空（忘掉了 4 轮对话）。"
        fresh = await qq.mention(1, 111, "现在呢？", nickname="Alice")
        await qq.reply_to(fresh)
        assert len(fake.completions()[-1].messages) == 2
        assert len(fake.completions()) == 9  # the three commands never reached the API

    log = log_path.read_text("utf-8")
    assert "glm call conv=group:1 model=glm-4-flash-250414 mode=stream ok=true" in log
    assert KEY_SECRET not in log


async def test_without_a_key_the_bot_starts_and_says_it_is_not_configured(fake, bot_env, log_path):
    del bot_env["GLM_API_KEY"]
    async with RunningBot(bot_env, log_path, self_id=SELF_ID, token=ACCESS_TOKEN) as qq:
        asked = await qq.mention(1, 111, "你好")
        assert (await qq.reply_to(asked)).text == (
            "机器人还没有配置 GLM_API_KEY，请管理员设置后再试。"
        )
    assert fake.completions() == []
    assert log_path.read_text("utf-8").count("GLM_API_KEY is not set") == 1
