"""``Toolbox``: the tools a request offers, and running the calls the model makes.

Whatever a call does, the model gets text back: a tool's result, clipped, or a short error
(unknown tool, arguments that are not a JSON object, a timeout, a failure). Nothing of it is
sent to QQ, and each call is one log line.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from nonebot.log import logger

from ..glm.completion import ToolCall
from .base import Tool, ToolContext, ToolFailed

RESULT_CHARS = 2000  # characters of one result the model reads at most
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Toolbox:
    """Tools by name; the first of two with one name is kept (built-in ones come first)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self._tools.setdefault(tool.name, tool)

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def specs(self) -> list[dict[str, Any]]:
        """The tools as a request's ``tools``."""
        return [tool.spec() for tool in self._tools.values()]

    async def run(self, call: ToolCall, context: ToolContext, limit: int = RESULT_CHARS) -> str:
        """The text the model gets for ``call``: at most ``limit`` characters."""
        started = time.monotonic()
        tool = self._tools.get(call.name)
        ok, text = False, ""
        try:
            if tool is None:
                text = f"error: there is no tool named {call.name!r}; the tools are: " + ", ".join(
                    self._tools
                )
            else:
                text, ok = await self._run(tool, call, context), True
        finally:
            logger.info(
                f"glm tool chat={context.chat} name={shown_name(call.name)}"
                f" source={tool.source if tool else '-'} ok={str(ok).lower()}"
                f" total_s={time.monotonic() - started:.3f} chars={len(text)}"
            )
        return clip(text, limit)

    async def _run(self, tool: Tool, call: ToolCall, context: ToolContext) -> str:
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            return f"error: the arguments of {tool.name} are not valid JSON"
        if not isinstance(arguments, dict):
            return f"error: the arguments of {tool.name} must be a JSON object"
        try:
            result = await asyncio.wait_for(tool.run(arguments, context), tool.timeout)
        except asyncio.TimeoutError:
            return f"error: {tool.name} did not finish within {tool.timeout:g} seconds"
        except ToolFailed as failure:
            return f"error: {failure}"
        except Exception as error:  # a tool's bug must not cost the answer
            logger.opt(exception=error).warning(f"glm-chat: tool {tool.name} failed")
            return f"error: {tool.name} failed ({type(error).__name__})"
        return result if isinstance(result, str) else str(result)


def shown_name(name: str) -> str:
    """A tool name the model wrote, fit for one log line (quoted when it is not a plain name)."""
    return name if _PLAIN_NAME.fullmatch(name) else repr(name[:64])


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    note = "…(truncated)"
    return text[: max(0, limit - len(note))] + note
