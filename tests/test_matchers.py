"""The matchers through nonebug: triggers, replies, commands and who may run them."""

import dataclasses
import itertools
from collections import deque

import pytest
from nonebot.adapters.onebot.v11 import ActionFailed, Bot, Message, MessageSegment
from nonebug import App

from plugins.nonebot_plugin_glm_chat import runtime
from plugins.nonebot_plugin_glm_chat.chat.prompt import history_tokens
from plugins.nonebot_plugin_glm_chat.chat.stats import CallStats
from plugins.nonebot_plugin_glm_chat.glm.auth import KeyPool
from plugins.nonebot_plugin_glm_chat.glm.client import CallRecord
from plugins.nonebot_plugin_glm_chat.memory.models import Speaker, Turn
from plugins.nonebot_plugin_glm_chat.runtime import get_services
from tests.conftest import API_KEY_SECRET, IGNORED_BOT_ID, SUPERUSER_ID
from tests.support.events import SELF_ID, group_message, private_message
from tests.support.fake_glm import Fault
from tests.support.matching import plain, quoted, receive, seed, stored


async def test_mention_gets_a_quoted_answer_that_saw_the_speaker(app: App, fake_glm):
    event = group_message("你好", group_id=101, user_id=42, nickname="小明", card="明哥")
    await receive(app, event, quoted(event, "回声#2：明哥(42): 你好"))
    assert fake_glm.completions()[-1].messages[-1]["content"] == "明哥(42): 你好"
    assert await stored("group:101") == [
        Turn("你好", "回声#2：明哥(42): 你好", Speaker("42", "明哥"))
    ]


async def test_group_shares_one_context_and_keeps_members_apart(app: App, fake_glm):
    first = group_message("我是Alice", group_id=102, user_id=1, nickname="Alice")
    await receive(app, first, quoted(first, "回声#2：Alice(1): 我是Alice"))
    second = group_message("我是谁？", group_id=102, user_id=2, nickname="Bob")
    await receive(app, second, quoted(second, "回声#4：Bob(2): 我是谁？"))
    other = group_message("别的群", group_id=103, user_id=1, nickname="Alice")
    await receive(app, other, quoted(other, "回声#2：Alice(1): 别的群"))
    turns = await stored("group:102")
    assert [(t.speaker.user_id, t.question) for t in turns] == [
        ("1", "我是Alice"),
        ("2", "我是谁？"),
    ]


async def test_a_mention_inside_the_message_also_asks(app: App, fake_glm):
    message = Message(
        [
            MessageSegment.text("请问 "),
            MessageSegment.at(SELF_ID),
            MessageSegment.text(" 和 "),
            MessageSegment.at(43),
            MessageSegment.text(" 谁高？"),
        ]
    )
    event = group_message(message, group_id=109, to_me=False)
    await receive(app, event, quoted(event, "回声#2：小明(42): 请问 和 @43 谁高？"))


async def test_private_message_is_answered_without_quote_or_label(app: App, fake_glm):
    event = private_message("私聊你好", user_id=77)
    await receive(app, event, plain("回声#2：私聊你好"))
    assert [t.question for t in await stored("private:77")] == ["私聊你好"]


@pytest.mark.parametrize(
    "event",
    [
        group_message("没有@我", group_id=104, to_me=False),
        group_message("我自己", group_id=104, user_id=SELF_ID),
        group_message("另一个机器人", group_id=104, user_id=IGNORED_BOT_ID),
        private_message("另一个机器人私聊", user_id=IGNORED_BOT_ID),
    ],
    ids=["not-mentioned", "self", "ignored-bot", "ignored-bot-private"],
)
async def test_messages_that_never_trigger(app: App, fake_glm, event):
    await receive(app, event)
    assert fake_glm.completions() == []


async def test_bare_mention_gets_a_hint_and_no_api_call(app: App, fake_glm):
    event = group_message(Message(MessageSegment.face(14)), group_id=105)
    await receive(app, event, quoted(event, "有什么想问的？在@我的同一条消息里写上问题就好。"))
    assert fake_glm.completions() == []


async def test_long_message_is_cut_and_the_user_told(app: App, fake_glm):
    event = private_message("长" * 80, user_id=78)
    await receive(app, event, plain("（消息太长，只读了前 50 个字。）\n回声#2：" + "长" * 50))
    assert fake_glm.completions()[-1].messages[-1]["content"] == "长" * 50


async def test_very_long_unicode_is_cut_by_characters(app: App, fake_glm):
    event = private_message("😀👍🏽" * 5000, user_id=82)
    kept = ("😀👍🏽" * 5000)[:50]
    await receive(app, event, plain(f"（消息太长，只读了前 50 个字。）\n回声#2：{kept}"))
    assert fake_glm.completions()[-1].messages[-1]["content"] == kept


async def test_user_text_that_looks_like_cq_codes_stays_text(app: App, fake_glm):
    event = group_message("[CQ:at,qq=all] [CQ:image,file=x.jpg] 你好", group_id=110)
    await receive(
        app, event, quoted(event, "回声#2：小明(42): [CQ:at,qq=all] [CQ:image,file=x.jpg] 你好")
    )


async def test_an_image_goes_to_the_vision_model_and_only_a_placeholder_is_stored(
    app: App, fake_glm
):
    url = "https://multimedia.example/a.png"
    event = group_message(
        Message([MessageSegment.text("这是什么？"), MessageSegment.image(url)]), group_id=111
    )
    await receive(app, event, quoted(event, "回声#2：小明(42): 这是什么？"))
    request = fake_glm.completions()[-1].body
    assert request["model"] == "glm-4.6v-flash"
    assert request["messages"][-1]["content"] == [
        {"type": "text", "text": "小明(42): 这是什么？"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    (turn,) = await stored("group:111")
    assert turn.question == "这是什么？ [图片]" and url not in turn.question


async def test_model_text_never_becomes_a_cq_code_and_markdown_is_flattened(app: App, fake_glm):
    fake_glm.push(Fault("reply", body="**注意** [CQ:at,qq=all] 大家好\n# 标题"))
    event = group_message("说点什么", group_id=106)
    await receive(app, event, quoted(event, "注意 [CQ:at,qq=all] 大家好\n\n【标题】"))


LONG_ANSWER = "甲" * 500 + "\n\n" + "乙" * 500  # over GLM_FORWARD_CHARS (800)


def forward_of(text: str) -> Message:
    return Message(MessageSegment.node_custom(SELF_ID, "GLM", Message(MessageSegment.text(text))))


async def test_a_long_answer_goes_out_as_a_forward_message(app: App, fake_glm):
    fake_glm.push(Fault("reply", body=LONG_ANSWER))
    event = group_message("写长一点", group_id=107)
    async with app.test_matcher() as ctx:
        bot = ctx.create_bot(base=Bot, self_id=str(SELF_ID))
        ctx.receive_event(bot, event)
        ctx.should_call_api(
            "send_group_forward_msg",
            {"group_id": 107, "messages": forward_of(LONG_ANSWER)},
            result={"message_id": 5},
        )
        ctx.should_call_send(event, quoted(event, "↑ 回答比较长，整理成了上面的聊天记录。"), {})


async def test_a_refused_forward_falls_back_to_plain_text(app: App, fake_glm):
    fake_glm.push(Fault("reply", body=LONG_ANSWER))
    event = private_message("写长一点", user_id=83)
    async with app.test_matcher() as ctx:
        bot = ctx.create_bot(base=Bot, self_id=str(SELF_ID))
        ctx.receive_event(bot, event)
        ctx.should_call_api(
            "send_private_forward_msg",
            {"user_id": 83, "messages": forward_of(LONG_ANSWER)},
            exception=ActionFailed(retcode=1200, msg="forward too large"),
        )
        ctx.should_call_send(event, plain(LONG_ANSWER), result={"message_id": 6})


_fault_groups = itertools.count(300)


@pytest.mark.parametrize(
    ("faults", "sentence", "logged"),
    [
        ([Fault("error", 500, "", "internal")] * 2, "模型服务出了点问题", "status=500"),
        ([Fault("error", 429, "", "slow down")] * 2, "请求太频繁", "status=429"),
        ([Fault("error", 400, "1301", "blocked")], "内容审核", "code=1301"),
        ([Fault("finish", finish_reason="sensitive")], "内容审核", "code=1301"),
        ([Fault("hang", delay=3.0)] * 2, "超时", "error=APITimeoutError"),
        ([Fault("text", 200, body="<html>gateway</html>")], "模型服务出了点问题", "status=200"),
        ([Fault("no_choices")], "模型服务出了点问题", "error=UpstreamError"),
        ([Fault("sse_error", code="1230", message="boom")], "模型服务出了点问题", "code=1230"),
        ([Fault("error", 401, "1002", "bad token")], "API Key 被平台拒绝", "code=1002"),
    ],
    ids=[
        "500",
        "429",
        "1301",
        "sensitive",
        "timeout",
        "not-json",
        "no-choices",
        "error-frame",
        "rejected-key",
    ],
)
async def test_each_fault_gets_its_sentence_stores_nothing_and_logs_its_code(
    app: App, fake_glm, log_lines, faults, sentence, logged
):
    group = next(_fault_groups)
    await seed(f"group:{group}")
    fake_glm.push(*faults)
    event = group_message("这次会失败", group_id=group)
    async with app.test_matcher() as ctx:
        bot = ctx.create_bot(base=Bot, self_id=str(SELF_ID))
        ctx.receive_event(bot, event)
        ctx.should_call_send(event, quoted(event, _sentence_containing(sentence)), result={})
    assert [t.question for t in await stored(f"group:{group}")] == ["旧问题"]
    call_lines = [line for line in log_lines if line.startswith("glm call ")]
    assert len(call_lines) == 1 and "ok=false" in call_lines[0] and logged in call_lines[0]
    assert API_KEY_SECRET not in "\n".join(log_lines)
    assert fake_glm.faults == deque()  # every scripted fault was met: retries happened


def _sentence_containing(fragment: str) -> str:
    from plugins.nonebot_plugin_glm_chat.glm.errors import _FALLBACK_MESSAGE, _USER_MESSAGES

    sentences = [text for _, text in _USER_MESSAGES] + [_FALLBACK_MESSAGE]
    (match,) = [text for text in sentences if fragment in text]
    return match


# --- commands -----------------------------------------------------------------------------


async def test_member_reset_is_refused_and_changes_nothing(app: App, fake_glm):
    await seed("group:201")
    event = group_message("/glm reset", group_id=201, role="member", to_me=False)
    await receive(app, event, quoted(event, "只有群主、管理员或机器人主人可以这样做。"))
    assert len(await stored("group:201")) == 1
    assert fake_glm.completions() == []  # the command never reached the chat matcher


@pytest.mark.parametrize(
    ("role", "user_id"), [("admin", 42), ("owner", 42), ("member", SUPERUSER_ID)]
)
async def test_admins_and_superusers_reset_the_group(app: App, role, user_id):
    await seed("group:202")
    event = group_message("/glm reset", group_id=202, role=role, user_id=user_id, to_me=False)
    await receive(app, event, quoted(event, "上下文已清空（忘掉了 1 轮对话）。"))
    assert await stored("group:202") == []


async def test_reset_alias_and_private_reset(app: App):
    await seed("private:79")
    event = private_message("/重置对话", user_id=79)
    await receive(app, event, plain("上下文已清空（忘掉了 1 轮对话）。"))
    assert await stored("private:79") == []
    again = private_message("/glm reset", user_id=79)
    await receive(app, again, plain("上下文本来就是空的。"))


async def test_status(app: App):
    await seed("group:203")
    event = group_message("/glm status", group_id=203, to_me=False)
    tokens = history_tokens([Turn("旧问题", "旧回答")])
    await receive(
        app,
        event,
        quoted(
            event,
            f"模型：glm-4-flash-250414（stream 模式）\n"
            f"已记住 1 轮对话，最近的上下文约 {tokens} tokens\n"
            "长期记忆：还没有摘要（对话超出记忆窗口后会自动写）\n"
            "工具：开启（current_time、chat_info、draw_image）\n"
            "旁听：开启，记着最近 0 条群消息",
        ),
    )


INTRO = "群里@我或回复我的消息即可提问。可用命令："
PRIVATE_INTRO = "直接发消息即可提问。可用命令："
RESET_HELP = "/glm reset [all] — 清空本会话的上下文（别名 /重置对话；全群共用上下文时需管理员）"
STATUS_HELP = "/glm status — 查看模型、记住的对话、摘要、工具和旁听"
USAGE_HELP = "/glm usage — 今天和近 7 天用掉的 token"
HELP_HELP = "/glm help — 显示这份帮助"
DRAW_HELP = "/glm draw <描述> — 按描述画一张图"
MODEL_VIEW = "/glm model — 查看或切换本会话的模型（修改需机器人主人）"
MEMBER_HELP = [
    INTRO,
    RESET_HELP,
    STATUS_HELP,
    "/glm persona — 查看或设置人设（系统提示词）（修改需管理员）",
    MODEL_VIEW,
    "/glm tools — 开关工具：画图、查时间等（以及机器人主人配置的 MCP 工具）（修改需管理员）",
    DRAW_HELP,
    USAGE_HELP,
    HELP_HELP,
]
ADMIN_HELP = [
    INTRO,
    RESET_HELP,
    STATUS_HELP,
    "/glm persona [内容|clear] — 查看或设置人设（系统提示词）",
    MODEL_VIEW,
    "/glm mode shared|personal — 本群共用一个上下文，或每人一个",
    "/glm on — 在本群开启回答",
    "/glm off — 在本群关闭回答（命令仍可用）",
    "/glm search on|off — 开关联网搜索，回答后列出来源",
    "/glm tools on|off — 开关工具：画图、查时间等（以及机器人主人配置的 MCP 工具）",
    DRAW_HELP,
    "/glm listen on|off — 旁听群聊：提问时带上最近没有@我的群消息",
    "/glm chime <0-100> — 没人@我时主动插话的概率（百分比，默认 0）",
    USAGE_HELP,
    HELP_HELP,
]


async def test_help_lists_what_the_asker_may_run(app: App):
    member = group_message("/glm help", group_id=204, role="member", to_me=False)
    admin = group_message("/glm", group_id=204, role="admin", to_me=False)
    await receive(app, member, quoted(member, "\n".join(MEMBER_HELP)))
    await receive(app, admin, quoted(admin, "\n".join(ADMIN_HELP)))


async def test_unknown_subcommand_shows_help(app: App):
    event = private_message("/glm dance", user_id=80)
    # In private chat the user is the admin of their own chat.
    group_only = ("/glm mode ", "/glm on ", "/glm off ", "/glm listen ", "/glm chime ")
    private_help = [line for line in ADMIN_HELP[1:] if not line.startswith(group_only)]
    await receive(app, event, plain("\n".join([PRIVATE_INTRO, *private_help])))


async def test_glm_prefix_without_space_is_a_chat_message(app: App, fake_glm):
    event = private_message("/glmfoo", user_id=81)
    await receive(app, event, plain("回声#2：/glmfoo"))


async def test_stats_are_for_superusers_only(app: App):
    event = group_message("/glm stats", group_id=205, role="owner", to_me=False)
    await receive(app, event, quoted(event, "只有机器人主人可以这样做。"))


async def test_stats_show_calls_success_latency_errors_and_resting_keys(app: App, monkeypatch):
    stats = CallStats()
    for total_s in (1.0, 2.0, 3.0):
        stats.record(CallRecord("group:1", "m", "stream", total_s=total_s))
    stats.record(CallRecord("group:1", "m", "stream", total_s=9.0, error="E", code="1302"))
    keys = KeyPool(["restid.secret", "fineid.secret"], "jwt")
    keys.rest(keys.pick(), 600, "1113")
    services = get_services()
    monkeypatch.setattr(runtime, "_services", dataclasses.replace(services, stats=stats))
    monkeypatch.setattr(services.chat.client, "keys", keys)

    event = private_message("/glm stats", user_id=SUPERUSER_ID)
    window = "调用 4 次，成功率 75.0%，延迟 p50 2.00s / p95 9.00s\n  错误：1302×1"
    await receive(
        app,
        event,
        plain(
            f"API 调用统计\n今天：{window}\n启动以来：{window}\n"
            "休息中的 Key：restid（1113，还剩约 10 分钟）"
        ),
    )
