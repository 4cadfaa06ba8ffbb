"""试聊: a message typed in the browser, its answer streamed into the page, the conversation kept
like a QQ one."""

from playwright.async_api import Page, expect

from tests.browser.conftest import Console, Screenshot
from tests.support.fake_glm import FakeGLM, Fault


async def test_the_answer_streams_into_the_page_and_is_kept(
    logged_in: Page, console: Console, fake: FakeGLM, screenshot: Screenshot
):
    page = logged_in
    await page.get_by_role("link", name="试聊").click()
    await expect(page.get_by_text("和模型聊几句")).to_be_visible()
    box = page.get_by_label("消息")
    await box.fill("用一句话介绍一下长城")
    async with page.expect_response("**/glm/api/playground") as answered:
        await page.get_by_role("button", name="发送").click()

    response = await answered.value
    assert response.headers["content-type"].startswith("text/event-stream")
    bubbles = page.locator("#transcript li")
    await expect(bubbles).to_have_count(2)
    await expect(bubbles.nth(0)).to_have_text("用一句话介绍一下长城")
    await expect(page.locator("li.bubble.bot")).to_have_text("回声#2：用一句话介绍一下长城")
    await expect(page.locator("li.bubble.bot")).not_to_have_class("pending")
    assert fake.completions()[-1].body["stream"] is True  # the model was asked to stream
    await expect(box).to_have_value("")
    await box.fill("它有多长？")
    await box.press("Enter")  # Enter sends too
    await expect(page.locator("li.bubble.bot").nth(1)).to_have_text("回声#4：它有多长？")

    await page.reload()
    await expect(page.locator("li.bubble.me")).to_have_text(["用一句话介绍一下长城", "它有多长？"])
    await expect(page.locator("li.bubble.bot")).to_have_text(
        ["回声#2：用一句话介绍一下长城", "回声#4：它有多长？"]
    )
    await screenshot(page, "06-playground")
    await page.get_by_role("link", name="会话").click()
    await expect(page.get_by_role("link", name="console:playground")).to_be_visible()


async def test_a_failed_answer_shows_a_short_sentence_in_its_bubble(logged_in: Page, fake: FakeGLM):
    page = logged_in
    await page.goto("/glm/playground")
    fake.push(Fault("error", 400, "1301", "系统检测到输入或生成内容可能包含不安全或敏感内容"))
    await page.get_by_label("消息").fill("说点危险的")
    await page.get_by_role("button", name="发送").click()

    failed = page.locator("li.bubble.bot.failed")
    await expect(failed).to_have_text("这个话题触发了平台的内容审核，换个说法试试吧。")
    await expect(page.get_by_role("button", name="发送")).to_be_enabled()
