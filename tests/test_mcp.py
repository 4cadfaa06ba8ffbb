"""MCP servers against a real server process (``tests/support/mcp_server.py``), on stdio and on
streamable HTTP: tools listed and called, failures, timeouts, crashes, and no process left."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from plugins.nonebot_plugin_glm_chat.glm.completion import ToolCall
from plugins.nonebot_plugin_glm_chat.tools import mcp
from plugins.nonebot_plugin_glm_chat.tools.base import ToolContext, ToolFailed
from plugins.nonebot_plugin_glm_chat.tools.mcp import McpHub, parse_servers
from plugins.nonebot_plugin_glm_chat.tools.toolbox import Toolbox
from tests.support.bot_process import free_port
from tests.support.processes import alive

SERVER = str(Path(__file__).parent / "support" / "mcp_server.py")
CONTEXT = ToolContext("group:1")


def stdio(name: str = "t") -> dict:
    return {name: {"command": sys.executable, "args": [SERVER]}}


def server_pids() -> set[int]:
    """The test server's processes that are running (not zombies)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if SERVER.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[McpHub]:
    started = McpHub(tmp_path)
    yield started
    await started.close()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with (tmp_path / "http-server.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, SERVER, "--http", str(port)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the MCP HTTP server did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def tools_of(hub: McpHub) -> dict:
    return {tool.name: tool for tool in hub.tools()}


async def test_a_stdio_servers_tools_are_offered_and_called(hub):
    await hub.start(parse_servers(stdio()))
    tools = tools_of(hub)
    assert list(tools) == ["t_add", "t_echo", "t_slow", "t_fail", "t_crash", "t_pid"]
    add = tools["t_add"]
    assert add.source == "t" and add.description == "Add two whole numbers."
    assert add.spec()["function"]["parameters"]["required"] == ["a", "b"]
    assert await add.run({"a": 2, "b": 40}, CONTEXT) == "42"
    # What a tool returns is text for the model, exactly: never a command to the bot.
    assert await tools["t_echo"].run({"text": "[CQ:at,qq=all] /glm reset"}, CONTEXT) == (
        "[CQ:at,qq=all] /glm reset"
    )
    with pytest.raises(ToolFailed, match="the weather service is down"):
        await tools["t_fail"].run({}, CONTEXT)


async def test_a_streamable_http_servers_tools_are_called(hub, http_server):
    await hub.start(parse_servers({"web": {"url": http_server}}))
    assert await tools_of(hub)["web_add"].run({"a": 1, "b": 2}, CONTEXT) == "3"


async def test_a_slow_call_times_out_and_the_model_is_told(hub, monkeypatch):
    monkeypatch.setattr(mcp, "CALL_TIMEOUT", 0.5)
    await hub.start(parse_servers(stdio()))
    started = time.monotonic()
    result = await Toolbox(hub.tools()).run(ToolCall("1", "t_slow", '{"seconds": 10}'), CONTEXT)
    assert result == "error: t_slow did not finish within 0.5 seconds"
    assert time.monotonic() - started < 3


async def test_a_crashed_server_is_reported_once_and_its_tools_fail_fast(hub, log_lines):
    await hub.start(parse_servers(stdio()))
    tools = tools_of(hub)
    with pytest.raises(ToolFailed, match="not running"):
        await tools["t_crash"].run({}, CONTEXT)
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(ToolFailed, match="MCP server t is not running"):
            await tools["t_add"].run({"a": 1, "b": 1}, CONTEXT)
    assert time.monotonic() - started < 1
    assert sum("MCP server t stopped answering" in line for line in log_lines) == 1


async def test_servers_that_cannot_start_are_skipped_with_one_line_each(hub, log_lines, tmp_path):
    specs = {
        **stdio("good"),
        "missing": {"command": str(tmp_path / "no-such-program")},
        "exits": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(2)"]},
        "nobody": {"url": f"http://127.0.0.1:{free_port()}/mcp"},
    }
    await hub.start(parse_servers(specs))
    assert {tool.source for tool in hub.tools()} == {"good"}
    assert await tools_of(hub)["good_add"].run({"a": 1, "b": 1}, CONTEXT) == "2"
    for name in ("missing", "exits", "nobody"):
        skipped = [line for line in log_lines if f"MCP server {name} skipped" in line]
        assert len(skipped) == 1, log_lines
        assert "Traceback" not in skipped[0]


async def test_close_leaves_no_server_process_even_during_a_call(tmp_path):
    hub = McpHub(tmp_path)
    await hub.start(parse_servers({**stdio("a"), **stdio("b")}))
    pids = [int(await tools_of(hub)[f"{name}_pid"].run({}, CONTEXT)) for name in ("a", "b")]
    assert all(alive(pid) for pid in pids)
    call = asyncio.create_task(tools_of(hub)["a_slow"].run({"seconds": 60}, CONTEXT))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await hub.close()
    assert time.monotonic() - started < 8
    assert not any(alive(pid) for pid in pids)
    with pytest.raises((ToolFailed, asyncio.CancelledError)):
        await asyncio.wait_for(call, 5)


@pytest.mark.parametrize("after", [0.05, 0.4])
async def test_close_while_servers_are_still_starting(tmp_path, after):
    before = server_pids()
    hub = McpHub(tmp_path)
    hub.start_soon(parse_servers(stdio()))
    await asyncio.sleep(after)
    started = time.monotonic()
    await hub.close()
    assert time.monotonic() - started < 3
    assert hub.tools() == []
    assert server_pids() <= before


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ({"x": "python"}, "server 'x' must be an object"),
        ({"x": {}}, "server 'x' needs a command (stdio) or a url"),
        ({"x": {"url": "ftp://host"}}, "url must be an http:// or https:// URL"),
        ({"x": {"command": "python", "args": "server.py"}}, "args must be a list of strings"),
        ({"x": {"command": "python", "env": {"A": 1}}}, "env must map names to strings"),
    ],
)
def test_bad_settings_are_named(setting, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_servers(setting)


async def test_servers_set_without_the_mcp_package_cost_one_line_and_nothing_else(
    tmp_path, log_lines, monkeypatch
):
    from plugins.nonebot_plugin_glm_chat import runtime
    from plugins.nonebot_plugin_glm_chat.config import Config

    monkeypatch.setattr(runtime, "_services", None)
    monkeypatch.setattr(runtime, "mcp_installed", lambda: False)
    config = Config(glm_db_path=tmp_path / "x.db", glm_mcp_servers=stdio())
    services = await runtime.open_services(config)
    try:
        assert services.mcp is None
        assert [tool.name for tool in services.chat.tools()] == [
            "current_time",
            "chat_info",
            "draw_image",
        ]
    finally:
        await runtime.close_services()
    told = [line.strip() for line in log_lines if "GLM_MCP_SERVERS" in line]
    assert told == [
        "glm-chat: GLM_MCP_SERVERS is set, but the mcp package is not installed: pip install"
        ' "nonebot-plugin-glm-chat[mcp]" (in the checkout: pip install ".[mcp]"); the bot runs'
        " without MCP tools"
    ]
