"""What a tool is to the bot: a name, a description and a JSON schema the model reads, and a
coroutine that turns the model's arguments into text for the model.

Built-in tools, the platform's web search and MCP servers' tools all take this one shape, so the
chat service offers and runs them alike (see ``toolbox.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# What a tool may do for the chat besides returning text: send it a picture (bytes, or a URL
# when the bot could not download it).
ImageSink = Callable[[bytes | str], Awaitable[bool]]


class ToolFailed(Exception):
    """A tool could not do what was asked; the message goes to the model as the result."""


@dataclass(frozen=True)
class ToolContext:
    """Where a tool call comes from: the chat, who asked, and what the tool may send there.

    One context serves every call of one question; ``pictures`` and ``sources`` collect what
    its calls made (drawings sent, web search results to list under the answer).
    """

    chat: str  # group:1, private:42, console:playground
    asker_id: str = ""
    asker_name: str = ""
    group_name: Callable[[], Awaitable[str]] | None = None  # looked up when a tool asks
    send_image: ImageSink | None = None  # None: no chat to send to (the URL goes to the model)
    pictures: list[str] = field(default_factory=list)  # URLs drawn for this question
    sources: list[dict[str, Any]] = field(default_factory=list)  # web search results


@dataclass(frozen=True)
class Tool:
    """One function the model may call. ``run`` gets the parsed arguments and the context and
    returns text for the model; it raises ``ToolFailed`` (or anything) when it cannot."""

    name: str
    description: str
    run: Callable[[dict[str, Any], ToolContext], Awaitable[str]]
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    source: str = "built-in"  # or the MCP server's name, for the log and /glm tools
    timeout: float = 60.0  # seconds a call may take

    def spec(self) -> dict[str, Any]:
        """The tool as a request's ``tools`` entry (``{"type": "function"}``)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def text_parameter(name: str, description: str) -> dict[str, Any]:
    """The JSON schema of a tool's arguments that are one required text."""
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name],
    }
