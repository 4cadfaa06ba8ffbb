"""Getting an answer into QQ: quoted text, a merged forward message when it is long, and plain
pieces under QQ's length limit when a forward is refused."""

from __future__ import annotations

from nonebot.adapters.onebot.v11 import (
    ActionFailed,
    Bot,
    GroupMessageEvent,
    Message,
    MessageEvent,
    MessageSegment,
    NetworkError,
)
from nonebot.log import logger

from .events import reply_to
from .render import split_text

# Paragraph-sized nodes read well in a forward message.
FORWARD_NODE_CHARS = 1500
BOT_NAME = "GLM"
# A forward message cannot quote; in a group this quoted line tells the asker it is theirs.
FORWARD_POINTER = "↑ 回答比较长，整理成了上面的聊天记录。"


def forward_nodes(bot: Bot, text: str) -> Message:
    return Message(
        MessageSegment.node_custom(int(bot.self_id), BOT_NAME, Message(MessageSegment.text(piece)))
        for piece in split_text(text, FORWARD_NODE_CHARS)
    )


async def send_forward(bot: Bot, event: MessageEvent, text: str) -> None:
    nodes = forward_nodes(bot, text)
    if isinstance(event, GroupMessageEvent):
        await bot.send_group_forward_msg(group_id=event.group_id, messages=nodes)
    else:
        await bot.send_private_forward_msg(user_id=event.user_id, messages=nodes)


async def deliver(bot: Bot, event: MessageEvent, text: str, forward_above: int) -> None:
    """Send ``text`` as the answer to ``event``."""
    if len(text) > forward_above:
        try:
            await send_forward(bot, event, text)
        except (ActionFailed, NetworkError) as error:
            logger.warning(f"glm-chat: forward message refused ({error!r}); sending plain text")
        else:
            if isinstance(event, GroupMessageEvent):
                await bot.send(event, reply_to(event, FORWARD_POINTER))
            return
    for index, piece in enumerate(split_text(text)):
        await bot.send(event, reply_to(event, piece, quote=index == 0))
