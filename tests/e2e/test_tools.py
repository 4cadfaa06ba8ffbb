"""Issue 11 from the outside: /glm draw, the model's tool calls (sync, stream, async), web
search as a function, /glm tools, against ``python bot.py`` and the fake platform."""

import base64
import json
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.test_interleavings import command, running, stored
from tests.support.fake_glm import PNG, FakeGLM, Fault, calls, tool_results
from tests.support.onebot_client import OneBotClient, Sent
from tests.support.processes import alive

REFUSED = "这个描述没有通过平台的内容审核，换个说法试试吧。"
MCP_SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")
ROUNDS_SPENT = "（这个问题需要的工具调用太多，没能完成。换个问法试试？）"


def image_of(sent: Sent) -> str | None:
    """The ``file`` of the image segment a message carries, if any."""
    return next((s["data"]["file"] for s in sent.segments if s["type"] == "image"), None)


def offered(body: dict) -> list[str]:
    """The names of the functions a request offers."""
    return [t["function"]["name"] for t in body.get("tools") or [] if t["type"] == "function"]


async def ask(qq: OneBotClient, question: str, *, user: int = 111, **sender) -> Sent:
    return await qq.reply_to(await qq.mention(1, user, question, **sender))


async def test_glm_draw_sends_the_picture_quoting_the_asker_and_says_why_when_it_cannot(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        asked = await command(qq, 1, 111, "/glm draw 一只在月亮上钓鱼的猫", role="member")
        said = await qq.reply_to(asked)
        assert said.text == "好的，正在画，稍等一下。"
        picture = await qq.wait_until(lambda s: image_of(s) is not None)
        assert picture.quotes() == asked and picture.group_id == 1
        assert image_of(picture) == "base64://" + base64.b64encode(PNG).decode()
        assert fake.drawings()[-1].body == {
            "model": "cogview-3-flash",
            "prompt": "一只在月亮上钓鱼的猫",
        }

        # The bot cannot fetch the picture: QQ gets the platform's URL to try.
        fake.serve_images = False
        before = len(qq.sent)
        await command(qq, 1, 111, "/glm draw 一棵树", role="member")
        by_url = await qq.wait_until(lambda s: image_of(s) is not None, after=before)
        assert image_of(by_url).startswith("http://127.0.0.1:")

        fake.push_image(Fault("error", status=400, code="1301", message="sensitive"))
        refused = await command(qq, 1, 111, "/glm draw 不可描述的东西", role="member")
        await qq.wait_until(lambda s: s.quotes() == refused and s.text == REFUSED)

        empty = await command(qq, 1, 111, "/glm draw", role="member")
        assert (await qq.reply_to(empty)).text.startswith("想画什么？")
        stats = await command(qq, 1, 10000, "/glm stats")
        assert "调用 3 次" in (await qq.reply_to(stats)).text
    log = log_path.read_text("utf-8")
    assert len(re.findall(r"glm call conv=group:1 model=cogview-3-flash .* purpose=draw", log)) == 3
    assert "Traceback" not in log


async def test_draw_obeys_the_cooldown_and_does_not_hold_up_the_group(
    fake: FakeGLM, bot_env, log_path
):
    fake.image_latency = 3.0
    async with running({**bot_env, "GLM_COOLDOWN": "60"}, log_path) as qq:
        first = await command(qq, 1, 111, "/glm draw 猫", role="member")
        await qq.reply_to(first)
        # The group's next question is answered while the picture is still being drawn.
        answered = await ask(qq, "画好之前先回答我", user=222)
        assert answered.text.startswith("回声#")
        assert not any(image_of(s) for s in qq.sent)
        again = await command(qq, 1, 111, "/glm draw 狗", role="member")
        assert (await qq.reply_to(again)).text.startswith("慢一点哦")
        await qq.wait_until(lambda s: image_of(s) is not None, timeout=15)
    assert len(fake.drawings()) == 1


async def test_sigterm_while_drawing_stops_the_bot_within_seconds(fake: FakeGLM, bot_env, log_path):
    fake.image_latency = 30.0
    bot = running(bot_env, log_path)
    async with bot as qq:
        await qq.reply_to(await command(qq, 1, 111, "/glm draw 猫", role="member"))
        code, seconds = await bot.process.terminate()
    assert code in (0, -signal.SIGTERM) and seconds < 10, f"exit {code} after {seconds:.1f}s"
    assert "Traceback" not in log_path.read_text("utf-8")


@pytest.mark.parametrize("mode", ["stream", "sync", "async"])
async def test_the_model_calls_a_tool_and_answers_with_its_result(
    fake: FakeGLM, bot_env, log_path, mode
):
    async with running({**bot_env, "GLM_CALL_MODE": mode}, log_path) as qq:
        fake.push(Fault("tool_calls", body=calls(("current_time", {}))))
        answer = await ask(qq, "现在几点了？")
        first, second = fake.completions()[-2:]
        assert offered(first.body) == ["current_time", "chat_info", "draw_image"]
        asked_for = second.messages[-2]
        assert asked_for["role"] == "assistant" and asked_for["tool_calls"][0]["function"] == {
            "name": "current_time",
            "arguments": "{}",
        }
        result = second.messages[-1]
        assert result["tool_call_id"] == asked_for["tool_calls"][0]["id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 星期. \(UTC.*\)", result["content"])
        # The answer is the model's second reply (the fake echoes the tool's result).
        assert answer.text == f"回声#{len(second.messages)}：{result['content']}"
    # The turn keeps the question and the answer; the tool round is not stored.
    assert stored(bot_env["GLM_DB_PATH"]) == [("group:1", "现在几点了？", answer.text)]
    assert re.search(
        r"glm tool chat=group:1 name=current_time source=built-in ok=true",
        log_path.read_text("utf-8"),
    )


async def test_drawing_unknown_tools_bad_arguments_and_an_endless_loop_all_end_in_an_answer(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        fake.push(Fault("tool_calls", body=calls(("draw_image", {"prompt": "一只橘猫"}))))
        asked = await qq.mention(1, 111, "给我画一只橘猫")
        picture = await qq.wait_until(lambda s: image_of(s) is not None)
        answer = await qq.wait_until(lambda s: s.quotes() == asked and image_of(s) is None)
        assert picture.quotes() == asked and picture.message_id < answer.message_id
        assert fake.drawings()[-1].body["prompt"] == "一只橘猫"
        assert "has been sent to the chat" in answer.text

        fake.push(Fault("tool_calls", body=calls(("launch_rocket", {"to": "moon"}))))
        assert "there is no tool named 'launch_rocket'" in (await ask(qq, "发射火箭")).text

        fake.push(Fault("tool_calls", body=calls(("draw_image", "{not json"))))
        assert "not valid JSON" in (await ask(qq, "画")).text

        fake.clear()
        fake.push(*[Fault("tool_calls", body=calls(("current_time", {})))] * 5)
        endless = await ask(qq, "一直查时间")
        requests = fake.completions()
        assert [bool(offered(r.body)) for r in requests] == [True, True, True, False]
        assert len(tool_results(requests[-1].body)) == 3
        assert endless.text.startswith("回声#")  # answered once tools were no longer offered
    assert "Traceback" not in log_path.read_text("utf-8")


async def test_a_tools_output_is_data_never_a_cq_code_or_a_mention(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        fake.push(Fault("tool_calls", body=calls(("chat_info", {}))))
        answer = await ask(qq, "我是谁？这是哪个群？", nickname="[CQ:at,qq=all]")
        assert "QQ group 1 「测试群1」" in answer.text
        assert "asking: [CQ at,qq=all] (QQ 111)" in answer.text  # names lose their colons
        assert [s["type"] for s in answer.segments] == ["reply", "text"]


async def test_tools_off_for_a_chat_and_a_member_cannot_turn_them_on(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        off = await command(qq, 1, 666, "/glm tools off")
        assert (await qq.reply_to(off)).text == "工具已关闭，我只用文字回答。"
        member = await command(qq, 1, 111, "/glm tools on", role="member")
        assert (await qq.reply_to(member)).text == "只有群主、管理员或机器人主人可以这样做。"
        await ask(qq, "画只猫")
        assert "tools" not in fake.completions()[-1].body
        shown = await command(qq, 1, 666, "/glm tools")
        assert (
            await qq.reply_to(shown)
        ).text == "工具：关闭。用 /glm tools on 或 /glm tools off 切换。"
        # Another group keeps the default.
        await qq.reply_to(await qq.mention(2, 111, "你好"))
        assert offered(fake.completions()[-1].body) == ["current_time", "chat_info", "draw_image"]


async def test_web_search_with_tools_on_is_a_function_and_its_sources_are_listed(
    fake: FakeGLM, bot_env, log_path
):
    async with running(bot_env, log_path) as qq:
        await qq.reply_to(await command(qq, 1, 666, "/glm search on"))
        fake.push(Fault("tool_calls", body=calls(("web_search", {"query": "今天的新闻"}))))
        answer = await ask(qq, "今天有什么新闻？")
        first = fake.completions()[-2].body
        assert offered(first) == ["current_time", "chat_info", "draw_image", "web_search"]
        assert not any(t["type"] == "web_search" for t in first["tools"])  # one kind per request
        assert fake.searches()[-1].body["search_query"] == "今天的新闻"
        assert "关于「今天的新闻」的报道1" in answer.text
        assert answer.text.endswith(
            "参考来源：\n"
            + "\n".join(f"{i}. 搜索结果{i} https://news.example/{i}" for i in (1, 2, 3))
        )
    lines = [
        json.dumps(line)
        for line in log_path.read_text("utf-8").splitlines()
        if "purpose=search" in line
    ]
    assert len(lines) == 1


async def test_an_mcp_servers_tool_is_called_end_to_end_and_the_server_stops_with_the_bot(
    fake: FakeGLM, bot_env, log_path
):
    servers = {
        "t": {"command": sys.executable, "args": [MCP_SERVER]},
        "broken": {"command": "/nonexistent/mcp-server"},
    }
    bot = running({**bot_env, "GLM_MCP_SERVERS": json.dumps(servers)}, log_path)
    async with bot as qq:
        await bot.process.wait_for_log("MCP server t ready")
        fake.push(Fault("tool_calls", body=calls(("t_echo", {"text": "[CQ:at,qq=all] 来自 MCP"}))))
        answer = await ask(qq, "用 MCP 工具回声一下")
        assert "t_echo" in offered(fake.completions()[-2].body)
        assert answer.text.endswith("[CQ:at,qq=all] 来自 MCP")
        assert [s["type"] for s in answer.segments] == ["reply", "text"]

        fake.push(Fault("tool_calls", body=calls(("t_pid", {}))))
        pid = int((await ask(qq, "服务器的进程号？")).text.rpartition("：")[2])
        assert alive(pid)
        code, seconds = await bot.process.terminate()
    assert code in (0, -signal.SIGTERM) and seconds < 10, f"exit {code} after {seconds:.1f}s"
    assert not alive(pid)  # no orphan
    log = log_path.read_text("utf-8")
    assert log.count("MCP server broken skipped") == 1
    assert "glm tool chat=group:1 name=t_echo source=t ok=true" in log
    assert "Traceback" not in log
