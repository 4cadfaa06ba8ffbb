"""用量, 概览, 会话 and 调用记录 after a day's worth of QQ traffic: two groups, a private chat
and one question the platform refused."""

import csv
import io
from datetime import date

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Console, Screenshot
from tests.e2e.conftest import KEY_ID, KEY_SECRET, SELF_ID
from tests.support.fake_glm import FakeGLM, Fault

REFUSED = Fault("error", 400, "1301", "系统检测到输入或生成内容可能包含不安全或敏感内容")
CALLS = 6  # the questions below, each answered in one call


@pytest.fixture(scope="module")
async def traffic(console: Console, glm: tuple[FakeGLM, str]) -> None:
    """What the bot answered before the pages are looked at."""
    qq = console.qq
    for group, user, nickname, question in [
        (2001, 111, "Alice", "周末有什么好看的电影？"),
        (2001, 222, "Bob", "科幻片有推荐吗？"),
        (2001, 111, "Alice", "那部片子多长？"),
        (2002, 333, "Carol", "帮我想个队名"),
    ]:
        await qq.reply_to(await qq.mention(group, user, question, nickname=nickname))
    await qq.private_message(3001, "明天会下雨吗？", nickname="Dave")
    await qq.wait_until(lambda sent: sent.user_id == 3001)
    glm[0].push(REFUSED)
    await qq.reply_to(await qq.mention(2002, 444, "说点出格的", nickname="Eve"))


async def test_usage_draws_a_chart_and_downloads_a_csv(
    logged_in: Page, traffic: None, screenshot: Screenshot
):
    page = logged_in
    await page.goto("/glm/usage")

    chart = page.locator("svg[role=img]")
    await expect(chart).to_be_visible()
    assert await chart.locator("rect").count() >= 1
    await expect(page.get_by_role("link", name="group:2001")).to_be_visible()
    await screenshot(page, "05-usage")
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="下载 CSV").click()
    download = await downloading.value
    body = (await download.path()).read_text(encoding="utf-8-sig")

    assert body.splitlines()[0] == "day,chat,tokens,turns"
    rows = {row["chat"]: row for row in csv.DictReader(io.StringIO(body))}
    assert rows["group:2001"]["day"] == date.today().isoformat()
    assert rows["group:2001"]["turns"] == "3" and int(rows["group:2001"]["tokens"]) > 0
    assert set(rows) == {"group:2001", "group:2002", "private:3001"}


async def test_chats_lists_every_conversation(
    logged_in: Page, traffic: None, screenshot: Screenshot
):
    page = logged_in
    await page.goto("/glm/chats")

    await expect(page.get_by_role("heading", name="会话")).to_contain_text("共 3 个")
    for chat in ("group:2001", "group:2002", "private:3001"):
        await expect(page.get_by_role("link", name=chat)).to_be_visible()
    await screenshot(page, "03-chats")


async def test_calls_lists_each_api_call_and_filters_the_failed_one(
    logged_in: Page, traffic: None, screenshot: Screenshot
):
    page = logged_in
    await page.goto("/glm/calls")

    rows = page.locator("table.calls tbody tr")
    await expect(rows).to_have_count(CALLS)
    await expect(rows.filter(has_text="1301")).to_have_count(1)
    await expect(rows.filter(has_text="group:2001")).to_have_count(3)
    await expect(page.locator("body")).not_to_contain_text(KEY_SECRET)
    await screenshot(page, "07-calls")
    await page.get_by_label("只看失败").check()
    await page.get_by_role("button", name="筛选").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("group:2002")


async def test_overview_shows_the_account_the_calls_and_the_keys(
    logged_in: Page, traffic: None, screenshot: Screenshot
):
    page = logged_in
    await page.goto("/glm/")
    await screenshot(page, "02-overview")

    await expect(page.get_by_role("heading", name="概览")).to_be_visible()
    bots = page.locator(".card", has_text="QQ 账号")
    await expect(bots).to_contain_text("1 个在线")
    await expect(bots).to_contain_text(str(SELF_ID))
    await expect(page.locator(".card", has_text="今天的 API 调用")).to_contain_text(f"{CALLS} 次")
    await expect(page.locator(".card", has_text="API Key")).to_contain_text(KEY_ID)
    await expect(page.locator("body")).not_to_contain_text(KEY_SECRET)
    await expect(page.get_by_role("cell", name="1301")).to_be_visible()
    await expect(page.locator("svg[role=img] rect").first).to_be_visible()
