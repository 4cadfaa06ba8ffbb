"""Group features through nonebug: personas, models, modes, on/off, limits, usage, search."""

import itertools
from datetime import date, timedelta

import pytest
from nonebug import App

from plugins.nonebot_plugin_glm_chat.chat.prompt import GROUP_NOTE
from plugins.nonebot_plugin_glm_chat.chat.service import Question
from plugins.nonebot_plugin_glm_chat.config import DEFAULT_SYSTEM_PROMPT
from plugins.nonebot_plugin_glm_chat.memory.models import Speaker
from plugins.nonebot_plugin_glm_chat.runtime import get_services
from tests.conftest import SUPERUSER_ID
from tests.support.answers import ask
from tests.support.events import group_message, private_message
from tests.support.fake_glm import Fault
from tests.support.matching import configure, plain, quoted, receive, stored

REFUSAL = "只有群主、管理员或机器人主人可以这样做。"
SUPERUSER_REFUSAL = "只有机器人主人可以这样做。"
ALICE = Speaker("1001", "Alice")
_groups = itertools.count(600)


@pytest.fixture
def group() -> int:
    """A group no other test has used."""
    return next(_groups)


def command(text: str, group: int, role: str = "member", user_id: int = 42):
    return group_message(text, group_id=group, role=role, user_id=user_id, to_me=False)


async def mention(app: App, group: int, text: str, answer: str, **sender) -> None:
    """@mention the bot in ``group`` and expect ``answer``, quoting the mention."""
    event = group_message(text, group_id=group, **sender)
    await receive(app, event, quoted(event, answer))


async def talk(group: int, text: str, turns: int) -> None:
    """Fill a group's shared context with ``turns`` turns, straight through the service."""
    chat = get_services().chat
    for turn in range(turns):
        await ask(chat, Question(f"group:{group}", f"{text}{turn}", ALICE, f"group:{group}"))


async def test_persona_is_shown_set_by_admins_and_kept_however_long_the_talk(
    app: App, fake_glm, group, monkeypatch
):
    monkeypatch.setattr(get_services().chat, "summarizer", None)  # the window alone trims
    show = command("/glm persona", group)
    await receive(app, show, quoted(show, f"当前人设（默认）：{DEFAULT_SYSTEM_PROMPT}"))
    refused = command("/glm persona 你是一只猫", group)
    await receive(app, refused, quoted(refused, REFUSAL))

    set_ = command("/glm persona 你是一只猫，句尾加喵。", group, role="admin")
    await receive(app, set_, quoted(set_, "人设已更新，之后的对话都会用它。"))
    await talk(group, "第几句", 50)
    await mention(app, group, "还记得你是谁吗", "回声#42：小明(42): 还记得你是谁吗")
    sent = fake_glm.completions()[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "你是一只猫，句尾加喵。" + GROUP_NOTE}
    assert len(sent) == 1 + 2 * 20 + 1  # GLM_HISTORY_TURNS trimmed the talk, not the persona

    clear = command("/glm persona clear", group, role="owner")
    await receive(app, clear, quoted(clear, "人设已恢复默认。"))
    await mention(app, group, "现在呢", "回声#42：小明(42): 现在呢")
    assert fake_glm.completions()[-1].body["messages"][0]["content"] == (
        DEFAULT_SYSTEM_PROMPT + GROUP_NOTE
    )


async def test_model_is_set_by_superusers_and_an_unknown_one_is_reported(app: App, fake_glm, group):
    refused = command("/glm model glm-4-plus", group, role="owner")
    await receive(app, refused, quoted(refused, SUPERUSER_REFUSAL))

    set_ = command("/glm model glm-4-nosuch", group, user_id=SUPERUSER_ID)
    await receive(
        app, set_, quoted(set_, "模型已切换为 glm-4-nosuch。（名称不对的话，下次提问时会提示。）")
    )
    fake_glm.push(Fault("error", 400, "1211", "模型不存在"))
    event = group_message("你好", group_id=group)
    await receive(
        app,
        event,
        quoted(
            event, "模型 glm-4-nosuch 不存在（平台错误 1211），请机器人主人用 /glm model 换一个。"
        ),
    )
    assert fake_glm.completions()[-1].body["model"] == "glm-4-nosuch"

    back = command("/glm model default", group, user_id=SUPERUSER_ID)
    await receive(app, back, quoted(back, "模型已恢复默认：glm-4-flash-250414"))
    await mention(app, group, "再试", "回声#2：小明(42): 再试")  # the failure stored nothing
    assert fake_glm.completions()[-1].body["model"] == "glm-4-flash-250414"


async def test_personal_mode_keeps_members_apart(app: App, fake_glm, group):
    member_switch = command("/glm mode personal", group)
    await receive(app, member_switch, quoted(member_switch, REFUSAL))
    switch = command("/glm mode personal", group, role="admin")
    await receive(
        app, switch, quoted(switch, "已切换为每人一个上下文：每位成员只看到自己和我的对话。")
    )
    await mention(app, group, "我是A", "回声#2：我是A", user_id=1, nickname="A")
    await mention(app, group, "我是B", "回声#2：我是B", user_id=2, nickname="B")
    await mention(app, group, "我是谁？", "回声#4：我是谁？", user_id=1, nickname="A")
    assert [m["content"] for m in fake_glm.completions()[-1].body["messages"][1:]] == [
        "我是A",
        "回声#2：我是A",
        "我是谁？",
    ]

    own_reset = command("/glm reset", group, user_id=2)  # a member may clear their own
    await receive(app, own_reset, quoted(own_reset, "上下文已清空（忘掉了 1 轮对话）。"))
    assert len(await stored(f"group:{group}:1")) == 2
    everyone = command("/glm reset all", group, role="admin")
    await receive(app, everyone, quoted(everyone, "上下文已清空（忘掉了 2 轮对话）。"))
    assert await stored(f"group:{group}:1") == []


async def test_off_means_silence_until_on(app: App, fake_glm, group):
    off = command("/glm off", group, role="admin")
    await receive(app, off, quoted(off, "好的，我先不说话了，/glm on 可以叫我回来。"))
    await receive(app, group_message("在吗", group_id=group))
    assert fake_glm.completions() == []
    on = command("/glm on", group, role="owner")
    await receive(app, on, quoted(on, "好的，我回来了。"))
    await mention(app, group, "在吗", "回声#2：小明(42): 在吗")


async def test_groups_outside_the_allow_list_are_ignored(app: App, fake_glm, group, monkeypatch):
    configure(monkeypatch, glm_groups=[group])
    await receive(app, group_message("不在名单里", group_id=group + 1000))
    await receive(app, command("/glm status", group + 1000, role="admin"))
    assert fake_glm.completions() == []
    await mention(app, group, "在名单里", "回声#2：小明(42): 在名单里")


async def test_cooldown_warns_once_then_stays_quiet_and_spares_admins(
    app: App, fake_glm, group, monkeypatch
):
    configure(monkeypatch, glm_cooldown=600)
    await mention(app, group, "第一问", "回声#2：小明(42): 第一问")
    second = group_message("第二问", group_id=group)
    await receive(app, second, quoted(second, "慢一点哦，600 秒后再问吧。"))
    await receive(app, group_message("第三问", group_id=group))  # already told: silence
    await mention(app, group, "管理员不受限", "回声#4：小明(42): 管理员不受限", role="admin")
    assert len(fake_glm.completions()) == 2


async def test_daily_tokens_stop_a_group_once_spent(app: App, fake_glm, group, monkeypatch):
    configure(monkeypatch, glm_daily_tokens=10)
    await mention(app, group, "用掉额度", "回声#2：小明(42): 用掉额度")
    spent = group_message("还能问吗", group_id=group)
    await receive(app, spent, quoted(spent, "本群今天的 token 额度（10）用完了，明天再来吧。"))
    await receive(app, group_message("再问", group_id=group))  # told once a day
    await mention(app, group, "管理员照常", "回声#4：小明(42): 管理员照常", role="admin")


async def test_usage_shows_today_and_the_week(app: App, fake_glm, group):
    await mention(app, group, "花点 token", "回声#2：小明(42): 花点 token")
    store = get_services().chat.store
    tokens = await store.tokens_on(f"group:{group}", date.today().isoformat())
    assert tokens > 0
    usage = command("/glm usage", group)
    await receive(
        app, usage, quoted(usage, f"今天用了 {tokens} tokens，近 7 天共 {tokens} tokens。")
    )
    # SUPERUSERS see every chat: compare with what the store holds for the last 7 days.
    week = await store.usage_since((date.today() - timedelta(days=6)).isoformat())
    totals: dict[str, int] = {}
    for scope, _, spent in week:
        totals[scope] = totals.get(scope, 0) + spent
    every = private_message("/glm usage", user_id=SUPERUSER_ID)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:20]
    lines = [f"{scope}：{spent} / {spent}" for scope, spent in ranked]
    await receive(app, every, plain("\n".join(["近 7 天用量（今天 / 7 天，tokens）：", *lines])))
    assert f"group:{group}：{tokens} / {tokens}" in lines


async def test_web_search_without_tools_sends_the_platforms_tool_and_lists_three_sources(
    app: App, fake_glm, group
):
    tools_off = command("/glm tools off", group, role="admin")
    await receive(app, tools_off, quoted(tools_off, "工具已关闭，我只用文字回答。"))
    on = command("/glm search on", group, role="admin")
    await receive(app, on, quoted(on, "联网搜索已开启，回答会附上来源。"))
    answer = "回声#2：小明(42): 今天有什么新闻"
    sources = "\n".join(f"{i}. 搜索结果{i} https://news.example/{i}" for i in (1, 2, 3))
    await mention(app, group, "今天有什么新闻", f"{answer}\n\n参考来源：\n{sources}")
    assert fake_glm.completions()[-1].body["tools"] == [
        {"type": "web_search", "web_search": {"enable": True, "search_result": True}}
    ]
    off = command("/glm search off", group, role="admin")
    await receive(app, off, quoted(off, "联网搜索已关闭。"))


async def test_private_settings_are_the_users_own(app: App, fake_glm):
    event = private_message("/glm persona 说话简短", user_id=84)
    await receive(app, event, plain("人设已更新，之后的对话都会用它。"))
