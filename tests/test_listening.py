"""Reading along and remarks through nonebug: what counts as background, /glm listen and
/glm chime, who may run them, and what the group is told."""

from __future__ import annotations

import itertools

import pytest
from nonebot.adapters.onebot.v11 import Message, MessageSegment
from nonebug import App

from plugins.nonebot_plugin_glm_chat.chat.context import BACKGROUND_HEADER
from plugins.nonebot_plugin_glm_chat.runtime import get_services
from tests.conftest import IGNORED_BOT_ID
from tests.support.events import SELF_ID, group_message, private_message
from tests.support.matching import plain, quoted, receive

REFUSAL = "只有群主、管理员或机器人主人可以这样做。"
_groups = itertools.count(900)


@pytest.fixture
def group() -> int:
    return next(_groups)


def said(text: str | Message, group: int, user_id: int = 7, role: str = "member", **more):
    """A group message not addressed to the bot."""
    return group_message(text, group_id=group, user_id=user_id, role=role, to_me=False, **more)


async def kept(group: int) -> list[str]:
    reading = get_services().reading
    await reading.flush()
    rows = await reading.log.since(
        f"group:{group}", "-", 2**62, keep=100, oldest_at=reading.oldest_at()
    )
    return [f"{heard.speaker.label()}: {heard.text}" for heard in rows]


async def test_plain_messages_are_background_and_the_rest_is_not(app: App, fake_glm, group):
    picture = Message(
        [MessageSegment.text("看这个"), MessageSegment.image("https://example.invalid/a.png")]
    )
    for event in (
        said("今天吃什么", group, nickname="阿花"),
        said(picture, group, user_id=8, nickname="阿草"),
        said("/weather 北京", group),  # a command, even another plugin's
        said("/glm status", group),  # ours: answered, not kept
        said("我是另一个机器人", group, user_id=IGNORED_BOT_ID),
        said("我自己说的", group, user_id=SELF_ID),
    ):
        if event.get_plaintext().startswith("/glm"):
            await receive(app, event, quoted(event, _status_reply(2)))
        else:
            await receive(app, event)
    assert await kept(group) == ["阿花(7): 今天吃什么", "阿草(8): 看这个[图片]"]


def _status_reply(kept: int, chime: str = "") -> str:
    return (
        "模型：glm-4-flash-250414（stream 模式）\n"
        "已记住 0 轮对话，最近的上下文约 0 tokens\n"
        "长期记忆：还没有摘要（对话超出记忆窗口后会自动写）\n"
        "工具：开启（current_time、chat_info、draw_image）\n"
        f"旁听：开启，记着最近 {kept} 条群消息{chime}"
    )


async def test_a_question_carries_the_background_before_it(app: App, fake_glm, group):
    await receive(app, said("周末去爬山", group, nickname="阿花"))
    ask = group_message("你觉得呢", group_id=group, user_id=9, nickname="阿明")
    content = f"{BACKGROUND_HEADER}\n阿花(7): 周末去爬山\n阿明(9): 你觉得呢"
    await receive(app, ask, quoted(ask, f"回声#2：{content}"))
    again = group_message("还有呢", group_id=group, user_id=9, nickname="阿明")
    await receive(app, again, quoted(again, "回声#4：阿明(9): 还有呢"))


async def test_only_admins_switch_listening_and_off_forgets(app: App, fake_glm, group):
    await receive(app, said("一句话", group))
    member = said("/glm listen off", group)
    await receive(app, member, quoted(member, REFUSAL))
    assert await kept(group) == ["小明(7): 一句话"]

    off = said("/glm listen off", group, role="admin")
    await receive(app, off, quoted(off, "好的，我不再旁听，记下的 1 条群消息已经删除。"))
    await receive(app, said("没人听了", group))
    assert await kept(group) == []
    show = said("/glm listen", group, role="admin")
    await receive(
        app, show, quoted(show, "旁听现在是关的。用 /glm listen on 或 /glm listen off 切换。")
    )

    on = said("/glm listen on", group, role="owner")
    reply = "好的，我会旁听群聊：提问时带上最近 20 条没有@我的消息（只保留 60 分钟以内的）。"
    await receive(app, on, quoted(on, reply))
    await receive(app, said("又听见了", group))
    assert await kept(group) == ["小明(7): 又听见了"]


async def test_chime_is_set_by_admins_within_range(app: App, fake_glm, group):
    member = said("/glm chime 50", group)
    await receive(app, member, quoted(member, REFUSAL))
    for bad in ("101", "-1", "abc", "5.5", "²", "５"):
        event = said(f"/glm chime {bad}", group, role="admin")
        await receive(app, event, quoted(event, "请给一个 0 到 100 的整数，例如 /glm chime 5。"))
    ok = said("/glm chime 5%", group, role="admin")
    reply = "好的，没人@我时，每条群消息有 5% 的机会让我插一句，每 300 秒最多一次。"
    await receive(app, ok, quoted(ok, reply))
    show = said("/glm chime", group, role="admin")
    await receive(
        app,
        show,
        quoted(show, "插话概率现在是 5%。用 /glm chime <0-100> 设置，每 300 秒最多一次。"),
    )
    status = said("/glm status", group)
    await receive(app, status, quoted(status, _status_reply(0, "，插话概率 5%")))


async def test_listen_and_chime_are_for_groups(app: App, fake_glm):
    for text in ("/glm listen off", "/glm chime 10"):
        event = private_message(text, user_id=77)
        await receive(app, event, plain("这个命令只在群里有用。"))
