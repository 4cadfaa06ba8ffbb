"""Logging in to the console, with the token the bot generated and logged at start-up."""

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Console, Screenshot, running_console


@pytest.fixture(scope="module")
async def console(glm, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """A bot started without GLM_CONSOLE_TOKEN: it generates a token and logs the link."""
    async with running_console(glm[1], tmp_path_factory.mktemp("bot"), None) as running:
        yield running


async def test_a_wrong_token_is_refused_and_the_form_stays(
    page: Page, console: Console, screenshot: Screenshot
):
    await page.goto("/glm/login")
    await screenshot(page, "01-login")
    await page.get_by_label("访问令牌").fill("not-the-console-token")
    await page.get_by_role("button", name="登录").click()

    await expect(page.get_by_role("alert")).to_have_text("访问令牌不对。")
    await expect(page).to_have_url(f"{console.url}/glm/login")
    await expect(page.get_by_label("访问令牌")).to_be_visible()
    await page.goto("/glm/chats")  # still not logged in
    await expect(page).to_have_url(f"{console.url}/glm/login")


async def test_the_right_token_in_the_form_logs_in_until_logging_out(page: Page, console: Console):
    await page.goto("/glm/login")
    await page.get_by_label("访问令牌").fill(console.token)
    await page.get_by_role("button", name="登录").click()

    await expect(page).to_have_url(f"{console.url}/glm/")
    await expect(page.get_by_role("heading", name="概览")).to_be_visible()
    await page.get_by_role("link", name="会话").click()
    await expect(page.get_by_role("heading", name="会话")).to_be_visible()

    await page.get_by_role("button", name="退出").click()
    await expect(page).to_have_url(f"{console.url}/glm/login")
    await page.goto("/glm/chats")
    await expect(page).to_have_url(f"{console.url}/glm/login")


async def test_the_link_from_the_start_up_log_logs_in_and_leaves_no_token_in_the_address(
    page: Page, console: Console
):
    assert console.link is not None
    assert console.link.startswith(f"{console.url}/glm/login?token=")
    token_file = console.process.log_path.parent / "data" / "console_token"
    assert token_file.read_text().strip() == console.token  # kept beside the database

    await page.goto(console.link)

    await expect(page.get_by_role("heading", name="概览")).to_be_visible()
    assert page.url == f"{console.url}/glm/"


async def test_pages_lead_to_the_login_page_without_a_session(page: Page, console: Console):
    for path in ("/glm/chats", "/glm/", "/glm/chats/group:1", "/glm/usage", "/glm/playground"):
        await page.goto(path)
        await expect(page).to_have_url(f"{console.url}/glm/login")
        await expect(page.get_by_label("访问令牌")).to_be_visible()
