"""A real MCP server for the tests (the ``mcp`` package's ``MCPServer``).

    python tests/support/mcp_server.py               # stdio
    python tests/support/mcp_server.py --http PORT   # streamable HTTP on 127.0.0.1:PORT/mcp

Its tools: ``add``, ``echo`` (returns its text exactly), ``slow``, ``fail`` (an error result),
``crash`` (the process exits), and ``pid`` (the server's process id).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("glm-chat-test")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two whole numbers."""
    return str(a + b)


@server.tool()
def echo(text: str) -> str:
    """Return the text exactly as given."""
    return text


@server.tool()
async def slow(seconds: float) -> str:
    """Wait, then say so."""
    await asyncio.sleep(seconds)
    return f"waited {seconds:g}s"


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ToolError("the weather service is down")


@server.tool()
def crash() -> str:
    """End the server's process at once."""
    os._exit(3)


@server.tool()
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
