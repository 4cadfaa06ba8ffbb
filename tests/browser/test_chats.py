"""会话 and one chat's page: what QQ members said, the settings form, the reset button, and
text from QQ or the model shown as text, never as HTML."""

from playwright.async_api import Dialog, Page, expect

from plugins.nonebot_plugin_glm_chat.chat.labels import clean_name
from plugins.nonebot_plugin_glm_chat.chat.prompt import GROUP_NOTE
from tests.browser.conftest import Console, Screenshot, ask
from tests.support.fake_glm import FakeGLM


async def test_a_group_conversation_is_listed_and_shows_who_asked_what(
    logged_in: Page, console: Console, screenshot: Screenshot
):
    page = logged_in
    first = await ask(console, 1001, 111, "今天适合去爬山吗？", "Alice")
    second = await ask(console, 1001, 222, "那带什么吃的好？", "Bob")

    await page.get_by_role("link", name="会话").click()
    link = page.get_by_role("link", name="group:1001")
    await expect(link).to_be_visible()
    await link.click()

    await expect(page).to_have_url(f"{console.url}/glm/chats/group:1001")
    turns = page.locator("li.turn")
    await expect(turns).to_have_count(2)
    newest, oldest = turns.nth(0), turns.nth(1)  # newest first
    await expect(oldest.locator(".who").first).to_contain_text("Alice")
    await expect(oldest.locator(".q")).to_have_text("今天适合去爬山吗？")
    await expect(oldest.locator(".a p")).to_have_text(first)
    await expect(newest.locator(".who").first).to_contain_text("Bob")
    await expect(newest.locator(".q")).to_have_text("那带什么吃的好？")
    await expect(newest.locator(".a p")).to_have_text(second)
    await screenshot(page, "04-chat")


async def test_a_persona_saved_on_the_page_is_the_next_questions_system_prompt(
    logged_in: Page, console: Console, fake: FakeGLM
):
    page = logged_in
    await ask(console, 1002, 111, "你是谁？", "Alice")
    persona = "你是一只说话简短的猫，每句话以“喵”结尾。"

    await page.goto("/glm/chats/group:1002")
    await page.locator("#persona").fill(persona)
    await page.get_by_role("button", name="保存设置").click()

    await expect(page.get_by_role("status")).to_have_text("设置已保存。")
    await expect(page.locator("#persona")).to_have_value(persona)
    await ask(console, 1002, 111, "现在你是谁？", "Alice")
    system = fake.completions()[-1].messages[0]
    assert system == {"role": "system", "content": persona + GROUP_NOTE}


async def test_clearing_the_context_after_confirming_forgets_the_turns(
    logged_in: Page, console: Console, fake: FakeGLM
):
    page = logged_in
    await ask(console, 1003, 111, "暗号是青蛙", "Alice")
    await ask(console, 1003, 222, "我记下了", "Bob")
    await page.goto("/glm/chats/group:1003")
    await expect(page.locator("li.turn")).to_have_count(2)
    asked: list[str] = []

    async def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", confirm)
    await page.get_by_role("button", name="清空上下文").click()

    await expect(page.get_by_role("status")).to_have_text("上下文已清空。")
    await expect(page.locator("li.turn")).to_have_count(0)
    await expect(page.get_by_text("上下文是空的。")).to_be_visible()
    assert asked == ["确定清空 group:1003 的上下文吗？此操作无法撤销。"]
    await ask(console, 1003, 222, "暗号是什么？", "Bob")
    sent = fake.completions()[-1].messages
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[1]["content"] == "Bob(222): 暗号是什么？"


async def test_dismissing_the_confirmation_keeps_the_turns(logged_in: Page, console: Console):
    page = logged_in
    await ask(console, 1004, 111, "记住这句话", "Alice")
    await page.goto("/glm/chats/group:1004")
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="清空上下文").click()

    await page.reload()
    await expect(page.locator("li.turn")).to_have_count(1)
    await expect(page.get_by_role("status")).to_have_count(0)


async def test_a_nickname_and_a_question_made_of_html_show_as_text(
    logged_in: Page, console: Console
):
    page = logged_in
    nickname = "<img src=x onerror=window.__pwned=1>"
    question = "<script>window.__pwned=2</script>"
    shown = clean_name(nickname, "")  # the bot keeps 24 characters: "<img src=x onerror=windo"
    answer = await ask(console, 1005, 333, question, nickname)

    await page.goto("/glm/chats/group:1005")
    turn = page.locator("li.turn")
    await expect(turn.locator(".who").first).to_have_text(f"{shown} (333)")
    await expect(turn.locator(".q")).to_have_text(question)
    await expect(turn.locator(".a p")).to_have_text(answer)
    assert f"{shown}(333): {question}" in answer  # the echo carries both
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    await expect(page.locator('img[src="x"]')).to_have_count(0)
    await expect(page.locator("img")).to_have_count(0)  # the console shows no image at all
    await expect(page.locator("main script")).to_have_count(0)
