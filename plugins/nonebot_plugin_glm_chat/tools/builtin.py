"""The bot's own tools: the time, who is asking and where, and drawing.

Chosen for a group chat: each reads what the bot already knows or makes a picture for the chat
it was asked in. None acts on QQ beyond sending that picture.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..glm.errors import ContentFilterError, GLMError
from ..glm.images import ImageMaker
from .base import Tool, ToolContext, ToolFailed, text_parameter

WEEKDAYS = "一二三四五六日"
PICTURES_PER_QUESTION = 2  # drawings one question may make


async def current_time(arguments: dict[str, Any], context: ToolContext) -> str:
    now = datetime.now().astimezone()
    offset = now.strftime("%z")
    return (
        f"{now:%Y-%m-%d %H:%M:%S} 星期{WEEKDAYS[now.weekday()]}"
        f" (UTC{offset[:3]}:{offset[3:]}, the bot's local time)"
    )


async def chat_info(arguments: dict[str, Any], context: ToolContext) -> str:
    kind, _, number = context.chat.partition(":")
    lines = []
    if kind == "group":
        name = await context.group_name() if context.group_name is not None else ""
        lines.append(
            f"chat: QQ group {number.partition(':')[0]}" + (f" 「{name}」" if name else "")
        )
    elif kind == "private":
        lines.append("chat: a private QQ chat")
    else:
        lines.append("chat: the bot's web console")
    if context.asker_id:
        lines.append(f"asking: {context.asker_name or '?'} (QQ {context.asker_id})")
    return "\n".join(lines)


def drawing_tool(maker: ImageMaker) -> Tool:
    """``draw_image``: one picture, sent to the chat as it is made."""

    async def draw_image(arguments: dict[str, Any], context: ToolContext) -> str:
        prompt = arguments.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ToolFailed("draw_image needs a prompt: what to draw, as text")
        if len(context.pictures) >= PICTURES_PER_QUESTION:
            raise ToolFailed(f"at most {PICTURES_PER_QUESTION} pictures per question")
        try:
            picture = await maker.draw(prompt.strip(), conversation=context.chat)
        except ContentFilterError:
            raise ToolFailed("the platform refused to draw this (content review)") from None
        except GLMError as error:
            raise ToolFailed(f"drawing failed ({type(error).__name__})") from None
        context.pictures.append(picture.url)
        if context.send_image is None:
            return f"drawn: {picture.url} (give the user this link)"
        if await context.send_image(picture.data or picture.url):
            return "the picture was drawn and has been sent to the chat; do not repeat any link"
        return "the picture was drawn, but QQ did not accept it; tell the user to try again later"

    return Tool(
        "draw_image",
        "Draw a picture from a description and send it to the chat. Use it only when the user"
        " asks for a picture; write the description in detail.",
        draw_image,
        text_parameter("prompt", "what to draw"),
        timeout=120.0,
    )


def builtin_tools(maker: ImageMaker | None) -> list[Tool]:
    """The tools every chat with tools on gets (drawing only with an image model)."""
    tools = [
        Tool(
            "current_time",
            "The current date, time and weekday where the bot runs.",
            current_time,
            timeout=5.0,
        ),
        Tool(
            "chat_info",
            "Where this conversation takes place (QQ group number and name, or a private chat)"
            " and who is asking (nickname and QQ number).",
            chat_info,
            timeout=10.0,
        ),
    ]
    if maker is not None:
        tools.append(drawing_tool(maker))
    return tools
