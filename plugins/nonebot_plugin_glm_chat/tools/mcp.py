"""MCP servers (``GLM_MCP_SERVERS``): started with the bot, their tools offered to the model,
stopped with the bot.

Each server runs in a task of its own, which enters the ``mcp`` package's transport and session
(anyio wants them entered and left in one task) and holds them until the bot stops. A server
that cannot start, or stops answering, is logged once and its tools fail fast; the others and
the chat go on. A stdio server's stderr goes to ``mcp-<name>.log`` beside the database, not
into the bot's log. The ``mcp`` package is an optional extra, imported only here and only when
servers are configured.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nonebot.log import logger

from .base import Tool, ToolContext, ToolFailed

START_TIMEOUT = 20.0  # seconds a server has to start and list its tools
CALL_TIMEOUT = 30.0  # seconds a tool call may take
CLOSE_TIMEOUT = 5.0  # seconds a server has to stop before its task is cancelled
CONNECTION_CLOSED = -32000  # the JSON-RPC error code of a connection that ended
INSTALL_MCP = 'pip install "nonebot-plugin-glm-chat[mcp]" (in the checkout: pip install ".[mcp]")'
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def mcp_installed() -> bool:
    return importlib.util.find_spec("mcp") is not None


@dataclass(frozen=True)
class McpServerSpec:
    """One entry of ``GLM_MCP_SERVERS``: a program speaking MCP on stdio, or a URL."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""


def parse_servers(value: Mapping[str, Any]) -> dict[str, McpServerSpec]:
    """The servers of the setting; raises ``ValueError`` naming the first bad one."""
    servers = {}
    for name, entry in value.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"server {name!r} must be an object")
        url, command = entry.get("url"), entry.get("command")
        args, env = entry.get("args", []), entry.get("env", {})
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"server {name!r}: url must be an http:// or https:// URL")
            servers[name] = McpServerSpec(name, url=url)
        elif isinstance(command, str) and command.strip():
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise ValueError(f"server {name!r}: args must be a list of strings")
            if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
                raise ValueError(f"server {name!r}: env must map names to strings")
            servers[name] = McpServerSpec(name, command, tuple(args), dict(env))
        else:
            raise ValueError(f"server {name!r} needs a command (stdio) or a url")
    return servers


class McpServer:
    """One running server: its session, its tools, and whether it still answers."""

    def __init__(self, spec: McpServerSpec, log_folder: Path) -> None:
        self.spec = spec
        self.tools: list[Tool] = []
        self._log_file = log_folder / f"mcp-{_UNSAFE.sub('_', spec.name)}.log"
        self._session: Any = None
        self._stop = asyncio.Event()
        self._down = False
        self.task: asyncio.Task[None] | None = None

    async def start(self, taken: set[str]) -> None:
        """Start the server and list its tools; raises what kept it from starting."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._serve(ready), name=f"mcp-{self.spec.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except BaseException:
            await self.stop()
            raise
        self.tools = [self._tool(listed, taken) for listed in self._listed]

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await self._connect(stack)
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self._listed = (await session.list_tools()).tools
                self._session = session
                ready.set_result(None)
                await self._stop.wait()
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            else:
                self._went_down(error)
        finally:
            self._session = None

    async def _connect(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        if self.spec.url:
            from mcp.client.streamable_http import streamable_http_client

            streams = await stack.enter_async_context(streamable_http_client(self.spec.url))
            return streams[0], streams[1]
        from mcp.client.stdio import StdioServerParameters, stdio_client

        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        errlog = stack.enter_context(self._log_file.open("a", encoding="utf-8"))
        parameters = StdioServerParameters(
            command=self.spec.command, args=list(self.spec.args), env=dict(self.spec.env)
        )
        streams = await stack.enter_async_context(stdio_client(parameters, errlog=errlog))
        return streams[0], streams[1]

    def _tool(self, listed: Any, taken: set[str]) -> Tool:
        """A server's tool as the model sees it: ``<server>_<tool>``, unique and safe."""
        base = _UNSAFE.sub("_", f"{self.spec.name}_{listed.name}")[:64]
        name, number = base, 2
        while name in taken:
            name = f"{base[: 64 - len(str(number)) - 1]}_{number}"
            number += 1
        taken.add(name)
        schema = listed.input_schema if isinstance(listed.input_schema, dict) else {}

        async def run(arguments: dict[str, Any], context: ToolContext) -> str:
            return await self.call(listed.name, arguments)

        return Tool(
            name,
            (listed.description or listed.name)[:1000],
            run,
            schema or {"type": "object", "properties": {}},
            source=self.spec.name,
            timeout=CALL_TIMEOUT,
        )

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """The text a tool returned; raises ``ToolFailed`` when it failed or cannot be called."""
        from mcp.shared.exceptions import MCPError

        session = self._session
        if session is None or self._down:
            raise ToolFailed(f"MCP server {self.spec.name} is not running")
        try:
            # The toolbox's own timeout (the tool's, CALL_TIMEOUT) ends a slow call; the
            # session's is only a backstop, later, so the model always gets the same message.
            result = await session.call_tool(
                tool, arguments, read_timeout_seconds=CALL_TIMEOUT + CLOSE_TIMEOUT
            )
        except MCPError as error:
            if error.code == CONNECTION_CLOSED:  # the server exited, or its connection did
                self._went_down(error)
                raise ToolFailed(f"MCP server {self.spec.name} is not running") from None
            raise ToolFailed(error.message or "the tool failed") from None
        except (OSError, EOFError, RuntimeError) as error:
            self._went_down(error)
            raise ToolFailed(f"MCP server {self.spec.name} is not running") from None
        except Exception as error:
            if type(error).__module__.startswith("anyio"):  # the server's streams closed
                self._went_down(error)
                raise ToolFailed(f"MCP server {self.spec.name} is not running") from None
            raise
        text = "\n".join(_part_text(part) for part in result.content)
        if result.is_error:
            raise ToolFailed(text or "the tool failed")
        return text or "(no output)"

    def _went_down(self, error: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning(
                f"glm-chat: MCP server {self.spec.name} stopped answering"
                f" ({type(error).__name__}); its tools are off until the bot restarts"
            )

    async def stop(self) -> None:
        """Leave the session and stop the server (its process too, for stdio)."""
        self._stop.set()
        task = self.task
        if task is None or task.done():
            return
        if self._session is None:  # still starting: nothing to wind down gracefully
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)


def _part_text(part: Any) -> str:
    kind = getattr(part, "type", "")
    return part.text if kind == "text" else f"[{kind or 'content'}]"


class McpHub:
    """Every configured server; ``tools()`` lists the tools of those that started."""

    def __init__(self, log_folder: Path) -> None:
        self._log_folder = log_folder
        self._servers: list[McpServer] = []
        self._starting: asyncio.Task[None] | None = None

    def start_soon(self, specs: Mapping[str, McpServerSpec]) -> None:
        """Start the servers in the background: the bot answers meanwhile, without them."""
        self._starting = asyncio.create_task(self.start(specs), name="mcp-start")

    async def start(self, specs: Mapping[str, McpServerSpec]) -> None:
        """Start every server at once; one that fails is logged once and skipped."""
        taken: set[str] = set()
        servers = [McpServer(spec, self._log_folder) for spec in specs.values()]
        self._servers.extend(servers)
        outcomes = await asyncio.gather(
            *(server.start(taken) for server in servers), return_exceptions=True
        )
        for server, outcome in zip(servers, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                reason = _reason(outcome)
                logger.warning(f"glm-chat: MCP server {server.spec.name} skipped: {reason}")
            else:
                logger.info(
                    f"glm-chat: MCP server {server.spec.name} ready:"
                    f" {', '.join(tool.name for tool in server.tools) or 'no tools'}"
                )

    def tools(self) -> list[Tool]:
        return [tool for server in self._servers for tool in server.tools]

    async def close(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.wait({self._starting}, timeout=CLOSE_TIMEOUT)
        await asyncio.gather(*(server.stop() for server in self._servers))


def _reason(error: BaseException) -> str:
    """Why a server did not start, in one line."""
    if isinstance(error, asyncio.TimeoutError):
        return f"it did not start within {START_TIMEOUT:g} s"
    grouped = getattr(error, "exceptions", None)  # an exception group from anyio's task groups
    if isinstance(grouped, (list, tuple)) and grouped:
        return _reason(grouped[0])
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(
        ": "
    )
