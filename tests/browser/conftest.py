"""The web console in a real browser: Debian's chromium, driven by Playwright, against
``python bot.py`` with the fake GLM server behind it and the OneBot test client in front.

One bot per test module (``console``), one browser for the session, a fresh browser context
(no cookies) per test. Screenshots go to ``$GLM_SCREENSHOTS`` (else a temporary folder).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright, expect

from tests.e2e import conftest as e2e
from tests.e2e.conftest import ACCESS_TOKEN, KEY_ID, KEY_SECRET, SELF_ID
from tests.support.bot_process import BotProcess, RunningBot
from tests.support.onebot_client import OneBotClient

# As root, chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONSOLE_TOKEN = "browser-tests-console-token"  # GLM_CONSOLE_TOKEN, 16 characters or more
LOGIN_LINK = re.compile(r"glm-chat console: (http://\S+/glm/login\?token=(\S+))")
VIEWPORT = {"width": 1280, "height": 800}
FAVICON = "/favicon.ico"  # the console has none; chromium asks for it anyway

Screenshot = Callable[[Page, str], Awaitable[None]]

# The end-to-end tests' fake GLM server (``glm``: one for this package) and its per-test reset.
glm, fake = e2e.glm, e2e.fake


@dataclass
class Console:
    """A running bot whose console the browser visits, and the QQ side of it."""

    url: str  # http://127.0.0.1:PORT, the pages' base
    token: str
    link: str | None  # the login link from the start-up log (only when the token was generated)
    qq: OneBotClient
    process: BotProcess


@asynccontextmanager
async def running_console(
    glm_base_url: str, directory: Path, token: str | None, **extra: str
) -> AsyncIterator[Console]:
    """``python bot.py`` with its console on; ``token=None`` leaves GLM_CONSOLE_TOKEN unset, so
    the bot generates one and logs the link that logs in. ``extra``: more settings."""
    env = {
        "GLM_API_KEY": f"{KEY_ID}.{KEY_SECRET}",
        "GLM_BASE_URL": glm_base_url,
        "GLM_DB_PATH": str(directory / "data" / "glm_chat.db"),
        "ONEBOT_ACCESS_TOKEN": ACCESS_TOKEN,
        "LOG_LEVEL": "INFO",
        **({"GLM_CONSOLE_TOKEN": token} if token else {}),
        **extra,
    }
    bot = RunningBot(env, directory / "bot.log", self_id=SELF_ID, token=ACCESS_TOKEN)
    async with bot as qq:
        log = await bot.process.wait_for_log("glm-chat console:")
        found = LOGIN_LINK.search(log)
        link = found.group(1) if found else None
        if token is None:
            assert found, f"no login link in the log:\n{log[-3000:]}"
            token = found.group(2)
        url = f"http://127.0.0.1:{bot.process.port}"
        yield Console(url, token, link, qq, bot.process)


async def ask(console: Console, group: int, user: int, question: str, nickname: str) -> str:
    """``@bot question`` in a group; the answer the bot sent to QQ."""
    asked = await console.qq.mention(group, user, question, nickname=nickname)
    return (await console.qq.reply_to(asked)).text


@pytest.fixture(scope="module")
async def console(glm, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """This module's bot, logged into with GLM_CONSOLE_TOKEN."""
    async with running_console(glm[1], tmp_path_factory.mktemp("bot"), CONSOLE_TOKEN) as running:
        yield running


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "chromium is not installed: run `bash tests/system-deps.sh` first (it installs "
            "Debian's chromium; Playwright's own browser download is not used)",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, console: Console) -> AsyncIterator[Page]:
    """A tab in a fresh context (no cookies). The test fails on a script error, a console error
    (such as a resource the Content-Security-Policy refused) or a stylesheet, script or fetch
    that failed; a page's own status is for the test to judge."""
    context = await browser.new_context(
        base_url=console.url, viewport=VIEWPORT, locale="zh-CN", accept_downloads=True
    )
    context.set_default_timeout(10_000)
    tab = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # "Failed to load resource" repeats a status, judged below from the response itself.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console error on {tab.url}: {message.text}")

    def on_response(response: Response) -> None:
        kind = response.request.resource_type
        if response.status >= 400 and kind != "document" and not response.url.endswith(FAVICON):
            problems.append(f"{kind} {response.url}: HTTP {response.status}")

    tab.on("console", on_console)
    tab.on("response", on_response)
    tab.on("pageerror", lambda error: problems.append(f"script error on {tab.url}: {error}"))
    yield tab
    await context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
async def logged_in(page: Page, console: Console) -> Page:
    """The tab, logged in with the start-up link's ``?token=``, on 概览."""
    await page.goto(f"/glm/login?token={console.token}")
    await expect(page.get_by_role("heading", name="概览")).to_be_visible()
    return page


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("GLM_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    _taken.append(directory)
    return directory


_taken: list[Path] = []  # where this run's screenshots went, for the summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for directory in _taken:
        terminalreporter.write_line(f"console screenshots: {directory}")


@pytest.fixture
def screenshot(screenshots: Path) -> Screenshot:
    """``await screenshot(page, "name")``: the whole page, as ``name.png``, for a human."""

    async def take(tab: Page, name: str) -> None:
        await tab.screenshot(path=screenshots / f"{name}.png", full_page=True)

    return take
