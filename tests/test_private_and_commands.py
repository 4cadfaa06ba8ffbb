"""Private chats (``GLM_PRIVATE``, limits) and the command details a busy group runs into."""

import itertools

import pytest
from nonebot import on_message
from nonebot.adapters.onebot.v11 import Adapter, GroupMessageEvent, Message, MessageSegment
from nonebug import App

from plugins.nonebot_plugin_glm_chat.memory.models import Turn
from plugins.nonebot_plugin_glm_chat.runtime import get_services
from tests.conftest import IGNORED_BOT_ID, SUPERUSER_ID
from tests.support.events import group_message, private_message
from tests.support.fake_glm import Fault
from tests.support.matching import configure, plain, quoted, receive, seed, stored

_users = itertools.count(7000)
_groups = itertools.count(7000)
PRIVATE_CLOSED = "这个机器人目前不接受私聊，请在群里@我。"


@pytest.fixture
def user() -> int:
    """A QQ user no other test has used."""
    return next(_users)


@pytest.fixture
def group() -> int:
    return next(_groups)


async def test_private_off_answers_nobody_but_keeps_superuser_commands(
    app: App, fake_glm, monkeypatch, user
):
    configure(monkeypatch, glm_private="off")
    await receive(app, private_message("在吗", user_id=user))
    await receive(app, private_message("/glm help", user_id=user))
    await receive(app, private_message("在吗", user_id=SUPERUSER_ID))
    model = get_services().config.glm_model
    await receive(
        app, private_message("/glm model", user_id=SUPERUSER_ID), plain(f"当前模型：{model}")
    )
    assert fake_glm.completions() == []


async def test_private_for_superusers_tells_others_once_a_day(
    app: App, fake_glm, monkeypatch, user
):
    configure(monkeypatch, glm_private="superusers")
    first = private_message("在吗", user_id=user)
    await receive(app, first, plain(PRIVATE_CLOSED))
    await receive(app, private_message("在吗？？", user_id=user))  # told already: silence
    owner = private_message("你好", user_id=SUPERUSER_ID)
    await receive(app, owner, plain("回声#2：你好"))
    assert len(fake_glm.completions()) == 1


async def test_cooldown_and_daily_tokens_apply_to_private_chats(
    app: App, fake_glm, monkeypatch, user
):
    configure(monkeypatch, glm_cooldown=3600)
    await receive(app, private_message("一", user_id=user), plain("回声#2：一"))
    await receive(app, private_message("二", user_id=user), plain("慢一点哦，3600 秒后再问吧。"))
    assert len(fake_glm.completions()) == 1

    configure(monkeypatch, glm_cooldown=0, glm_daily_tokens=1)
    spender = next(_users)
    await receive(app, private_message("三", user_id=spender), plain("回声#2：三"))
    await receive(
        app,
        private_message("四", user_id=spender),
        plain("你今天的 token 额度（1）用完了，明天再来吧。"),
    )
    # SUPERUSERS are exempt from both.
    configure(monkeypatch, glm_cooldown=3600, glm_daily_tokens=1)
    await get_services().chat.reset(f"private:{SUPERUSER_ID}")
    await receive(app, private_message("五", user_id=SUPERUSER_ID), plain("回声#2：五"))
    await receive(app, private_message("六", user_id=SUPERUSER_ID), plain("回声#4：六"))
    assert len(fake_glm.completions()) == 4


async def test_a_bare_private_message_is_not_told_to_at_the_bot(app: App, fake_glm, user):
    event = private_message("", user_id=user)
    event.message = Message(MessageSegment.face(14))
    await receive(app, event, plain("有什么想问的？直接发给我就好。"))


async def test_ignored_users_cannot_run_commands(app: App, group):
    await seed(f"group:{group}")
    event = group_message("/glm reset", group_id=group, user_id=IGNORED_BOT_ID, role="admin")
    await receive(app, event)
    assert len(await stored(f"group:{group}")) == 1


async def test_reset_alias_takes_all(app: App, group):
    await get_services().chat.update_options(f"group:{group}", personal=True)
    for member in (1, 2):
        await get_services().chat.store.append_turn(
            f"group:{group}:{member}", Turn("问", "答"), scope=f"group:{group}"
        )
    event = group_message("/重置对话 all", group_id=group, role="admin", to_me=False)
    await receive(app, event, quoted(event, "上下文已清空（忘掉了 2 轮对话）。"))
    assert await stored(f"group:{group}:1") == [] and await stored(f"group:{group}:2") == []


async def test_a_full_width_space_separates_the_words_of_a_command(app: App, fake_glm, group):
    event = group_message("/glm persona\u3000你是一只猫", group_id=group, role="admin")
    await receive(app, event, quoted(event, "人设已更新，之后的对话都会用它。"))
    assert (await get_services().chat.options(f"group:{group}")).persona == "你是一只猫"


async def test_superuser_usage_in_a_group_shows_only_that_group(app: App, group):
    await get_services().chat.store.append_turn("private:123456", Turn("私", "密"))
    event = group_message("/glm usage", group_id=group, user_id=SUPERUSER_ID)
    await receive(app, event, quoted(event, "今天用了 0 tokens，近 7 天共 0 tokens。"))


async def test_a_message_too_long_for_the_model_says_so_rather_than_reset(
    app: App, fake_glm, group
):
    fake_glm.push(Fault("error", 400, "1261", "prompt too long"))
    event = group_message("很长的一段话", group_id=group)
    await receive(app, event, quoted(event, "这条消息太长了，模型读不下，请精简后再发。"))
    assert len(fake_glm.completions()) == 1  # no history to trim: not retried


async def test_an_unknown_vision_model_names_its_setting(app: App, fake_glm, group):
    fake_glm.push(Fault("error", 400, "1211", "model not found"))
    url = "https://multimedia.example/b.png"
    event = group_message(
        Message([MessageSegment.text("看图"), MessageSegment.image(url)]), group_id=group
    )
    model = get_services().config.glm_vision_model
    expected = f"识图模型 {model} 不存在（平台错误 1211），请机器人主人修改 GLM_VISION_MODEL 设置。"
    await receive(app, event, quoted(event, expected))


def as_parsed(event: GroupMessageEvent) -> GroupMessageEvent:
    """``event`` as the adapter parses it: it takes its place in the queue on arrival."""
    parsed = Adapter.json_to_event(event.model_dump())
    assert isinstance(parsed, GroupMessageEvent) and parsed._glm_arrival is not None
    return parsed


@pytest.mark.timeout(30)  # a place left taken holds the next question up for good
@pytest.mark.parametrize("parse", [False, True], ids=["built", "parsed"])
async def test_a_message_another_plugin_takes_first_gets_no_answer_and_holds_nothing_up(
    app: App, fake_glm, group, parse
):
    blocker = on_message(priority=1, block=True)  # another plugin's catch-all, ahead of ours

    @blocker.handle()
    async def _take_it() -> None:
        pass

    taken = [
        group_message("你好", group_id=group),
        group_message("今天吃火锅", group_id=group, to_me=False),  # would be background
    ]
    try:
        for event in taken:
            await receive(app, as_parsed(event) if parse else event)
    finally:
        blocker.destroy()
    # What another plugin took gave its place up (the events are still alive here: it was
    # given up, not left to be freed), and is not ours to keep as background either.
    after = group_message("还在吗", group_id=group)
    await receive(app, after, quoted(after, "回声#2：小明(42): 还在吗"))
    assert len(fake_glm.completions()) == 1


async def test_a_command_after_a_quote_the_client_could_not_look_up_still_runs(app: App, group):
    message = Message([MessageSegment.reply(999_999), MessageSegment.text(" /glm reset")])
    event = group_message(message, group_id=group, role="admin", to_me=False)
    await receive(app, event, quoted(event, "上下文本来就是空的。"))


async def test_the_console_link_goes_to_superusers_in_private_only(app: App, group, monkeypatch):
    from plugins.nonebot_plugin_glm_chat.console.access import door

    monkeypatch.setattr(door, "link", "http://127.0.0.1:8080/glm/login?token=T" + "x" * 16)
    asked = private_message("/glm console", user_id=SUPERUSER_ID)
    await receive(
        app,
        asked,
        plain(f"网页控制台：{door.link}\n链接里带着访问令牌，请不要转发。"),
    )
    in_group = group_message("/glm console", group_id=group, user_id=SUPERUSER_ID)
    await receive(app, in_group, quoted(in_group, "登录链接带着访问令牌，请私聊我 /glm console。"))
    member = private_message("/glm console", user_id=next(_users))
    await receive(app, member, plain("只有机器人主人可以这样做。"))
    monkeypatch.setattr(door, "link", None)
    await receive(
        app,
        asked,
        plain("网页控制台没有开启（GLM_CONSOLE=off，或驱动器没有 HTTP 服务）。"),
    )


async def test_messages_the_bot_leaves_unanswered_reach_the_host_bots_other_plugins(
    app: App, fake_glm, user, group
):
    """Inside someone else's bot: what glm-chat answers is its own, what it lets go (its chat
    is switched off) goes on to the other plugins' matchers behind it."""
    other = on_message(priority=20)  # another plugin's private-chat and group replies

    @other.handle()
    async def _reply() -> None:
        await other.send(Message("另一个插件收到了"))

    try:
        answered = private_message("你好", user_id=user)
        await receive(app, answered, plain("回声#2：你好"))
        for chat in (f"private:{user}", f"group:{group}"):
            await get_services().chat.update_options(chat, enabled=False)
        for let_go in (
            private_message("还在吗", user_id=user),
            group_message("还在吗", group_id=group),
        ):
            await receive(app, let_go, plain("另一个插件收到了"))
    finally:
        other.destroy()
    assert len(fake_glm.completions()) == 1
