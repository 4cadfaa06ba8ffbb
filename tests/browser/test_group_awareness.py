"""One group's page as an admin meets its group awareness: the running summary of older turns,
what the group said around each question (folded away, shown as text), the bot's unprompted
remarks, and the 旁听群聊 / 插话概率 settings with their effect in QQ.

This module's bot keeps a history window of 2 turns, so that three questions make a summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Page, expect

from plugins.nonebot_plugin_glm_chat.chat.context import BACKGROUND_HEADER, CHIME_CUE
from tests.browser.conftest import CONSOLE_TOKEN, Console, Screenshot, ask, running_console
from tests.support.fake_glm import FakeGLM, Fault
from tests.support.onebot_client import text


@pytest.fixture(scope="module")
async def console(glm, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    folder = tmp_path_factory.mktemp("bot")
    async with running_console(glm[1], folder, CONSOLE_TOKEN, GLM_HISTORY_TURNS="2") as running:
        yield running


async def chat_data(console: Console, chat: str) -> dict:
    async with httpx.AsyncClient(
        base_url=console.url, headers={"Authorization": f"Bearer {console.token}"}
    ) as script:
        answer = await script.get(f"/glm/api/chats/{chat}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def until(console: Console, chat: str, ready, what: str) -> dict:
    """The chat's API data once ``ready(data)`` holds."""
    deadline = time.monotonic() + 10
    while not ready(data := await chat_data(console, chat)):
        assert time.monotonic() < deadline, f"{chat}: {what} did not happen"
        await asyncio.sleep(0.05)
    return data


async def chatter(console: Console, group: int, user: int, line: str, nickname: str) -> None:
    """A group message that is not for the bot."""
    await console.qq.group_message(group, user, [text(line)], nickname=nickname)


async def test_the_summary_and_what_the_group_said_around_a_question_show_as_text(
    logged_in: Page, console: Console, screenshot: Screenshot
):
    page = logged_in
    carol = "<img src=x onerror=window.__pwned=1>今晚吃火锅吗？"
    await chatter(console, 5001, 301, carol, "Carol")
    await chatter(console, 5001, 302, "好啊，我带毛肚\n再带点虾滑", "<b>Dave</b>")
    await until(console, "group:5001", lambda d: d["listening"]["kept"] == 2, "keeping 2")
    await ask(console, 5001, 111, "大家在聊什么？", "Alice")
    await ask(console, 5001, 222, "那我带点什么好？", "Bob")
    await ask(console, 5001, 111, "几点集合？", "Alice")
    await until(console, "group:5001", lambda d: d["summary"] is not None, "a summary")

    await page.goto("/glm/chats/group:5001")
    summary = page.get_by_role("region", name="摘要")
    await expect(summary).to_contain_text("概括了更早的 2 轮，更新于 ")
    await expect(summary.locator("p")).to_contain_text("Alice(111): 大家在聊什么？")
    await expect(page.get_by_role("separator")).to_have_text("以下对话已概括进摘要")

    turns = page.locator("li.turn")
    await expect(turns).to_have_count(3)
    first = turns.nth(2)  # the oldest: the question that carried what Carol and Dave said
    await expect(first.locator(".q")).to_have_text("大家在聊什么？")
    context = first.locator("details.context")
    await expect(context.locator("summary")).to_have_text("提问时带着的群消息（2 条）")
    shown = context.locator("pre")
    await expect(shown).to_be_hidden()  # folded until asked for
    await context.locator("summary").click()
    await expect(shown).to_be_visible()
    await expect(shown).to_have_text(
        f"{BACKGROUND_HEADER}\nCarol(301): {carol}\n<b>Dave</b>(302): 好啊，我带毛肚\n  再带点虾滑"
    )
    await expect(turns.nth(0).locator("details.context")).to_have_count(0)  # nothing since
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    await expect(page.locator("img")).to_have_count(0)
    await expect(page.locator("main b")).to_have_count(0)
    await screenshot(page, "08-chat-summary-context")


async def test_chime_and_listening_set_on_the_page_change_what_the_bot_does_in_qq(
    logged_in: Page, console: Console, fake: FakeGLM, screenshot: Screenshot
):
    page = logged_in
    await chatter(console, 5002, 301, "周末有人去爬山吗？", "Carol")
    await until(console, "group:5002", lambda d: d["listening"]["kept"] == 1, "keeping 1")

    await page.goto("/glm/chats/group:5002")
    listen, chime = page.get_by_label("旁听群聊"), page.get_by_label("插话概率")
    await expect(listen).to_be_checked()
    await expect(chime).to_have_value("0")
    await expect(page.locator("#listen-hint")).to_contain_text("现在记着 1 条")
    await chime.fill("100")
    await page.get_by_role("button", name="保存设置").click()
    await expect(page.get_by_role("status")).to_have_text("设置已保存。")
    await expect(chime).to_have_value("100")
    await expect(page.locator(".facts .pill.chime")).to_have_text("插话 100%")

    # Every message not addressed to the bot may now draw a remark: this one does.
    fake.push(Fault("reply", body="我也想去！山顶看日落很美。"))
    sent_before = len(console.qq.sent)
    await chatter(console, 5002, 302, "我去，早上八点出发", "Dave")
    remark = await console.qq.wait_until(
        lambda sent: sent.group_id == 5002, after=sent_before, timeout=10
    )
    assert remark.text == "我也想去！山顶看日落很美。" and remark.quotes() is None
    assert fake.completions()[-1].messages[-1]["content"].endswith(CHIME_CUE)
    await until(console, "group:5002", lambda d: d["turns"], "the remark stored")

    await page.reload()
    said = page.locator("li.turn.remark")
    await expect(said).to_have_count(1)
    await expect(said.locator(".meta").first).to_contain_text("主动插话")
    await expect(said.locator(".q")).to_have_count(0)  # the cue is not a question anyone asked
    await expect(said.locator(".a p")).to_have_text("我也想去！山顶看日落很美。")
    context = said.locator("details.context")
    await expect(context.locator("summary")).to_have_text("插话时看到的群消息（2 条）")
    await context.locator("summary").click()
    await expect(context.locator("pre")).to_contain_text("Dave(302): 我去，早上八点出发")
    assert CHIME_CUE not in await page.locator("main").inner_text()
    await screenshot(page, "09-chat-remark")

    # Listening off: what was kept is deleted, and the bot no longer hears the group.
    await listen.uncheck()
    await page.get_by_role("button", name="保存设置").click()
    await expect(page.get_by_role("status")).to_have_text("设置已保存。")
    await expect(listen).not_to_be_checked()
    await expect(page.locator(".facts")).to_contain_text("不旁听")
    await expect(page.locator("#listen-hint")).to_contain_text("现在一条也不记")
    await expect(page.locator("#chime-hint")).to_contain_text("旁听关着，机器人听不到群聊")
    await expect(page.locator(".facts .pill.chime")).to_have_text("插话 100%（不生效）")
    await expect(said.locator("details.context")).to_have_count(0)  # its copy went too
    data = await chat_data(console, "group:5002")
    assert (data["settings"]["listen"], data["listening"]["kept"]) == (False, 0)
    await screenshot(page, "10-chat-listening-off")

    await chatter(console, 5002, 303, "有人带水吗？", "Eve")
    await ask(console, 5002, 111, "山上冷吗？", "Alice")
    assert fake.completions()[-1].messages[-1]["content"] == "Alice(111): 山上冷吗？"

    await page.get_by_role("navigation").get_by_role("link", name="会话").click()
    row = page.locator("tr", has=page.get_by_role("link", name="group:5002"))
    await expect(row.locator(".tags")).to_contain_text("不旁听")
    await expect(row.locator(".tags")).to_contain_text("插话 100%（不生效）")
    await screenshot(page, "11-chats-markers")


async def test_a_percent_the_page_cannot_take_is_not_sent(logged_in: Page, console: Console):
    page = logged_in
    await page.goto("/glm/chats/group:5003")
    await page.get_by_label("插话概率").fill("150")
    await page.get_by_role("button", name="保存设置").click()
    # The browser holds the form back (max=100); nothing was saved.
    await expect(page.get_by_role("status")).to_have_count(0)
    assert await page.get_by_label("插话概率").evaluate("box => box.validity.rangeOverflow")
    assert (await chat_data(console, "group:5003"))["settings"]["chime"] == 0


async def test_a_private_chats_page_has_no_group_settings(logged_in: Page, console: Console):
    page = logged_in
    await console.qq.private_message(4001, "你好")
    await until(console, "private:4001", lambda d: d["turns"], "the private turn")
    await page.goto("/glm/chats/private:4001")
    await expect(page.get_by_role("button", name="保存设置")).to_be_visible()
    await expect(page.get_by_label("旁听群聊")).to_have_count(0)
    await expect(page.get_by_label("插话概率")).to_have_count(0)
