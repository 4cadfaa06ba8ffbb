"""``/glm draw``: a CogView picture for the chat, drawn beside the chat's queue.

Drawing takes the platform 10 to 30 seconds. The command takes its turn in the queue like any
other (limits are checked in order), says at once that it is drawing, and leaves the drawing to
a task of its own, so the group's next questions are not held up behind it. The picture then
arrives quoting the asker. Shutdown cancels drawings still under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from nonebot.adapters.onebot.v11 import GroupMessageEvent, Message, MessageEvent, MessageSegment
from nonebot.log import logger

from ..glm.errors import ContentFilterError, GLMError, user_message
from ..glm.images import ImageMaker
from .delivery import Outbox
from .events import chat_of

DRAWING = "好的，正在画，稍等一下。"
NO_PROMPT = "想画什么？在 /glm draw 后面写上描述，例如：/glm draw 一只在月亮上钓鱼的猫"
REFUSED = "这个描述没有通过平台的内容审核，换个说法试试吧。"
NOT_DRAWN = "出了点意外，没画出来，请稍后再试。"
PROMPT_LIMIT = 500  # characters of a description


def picture_message(event: MessageEvent, image: bytes | str) -> Message:
    """A picture (its bytes, or its URL) quoting ``event`` in groups."""
    message = Message(MessageSegment.image(image))
    if isinstance(event, GroupMessageEvent):
        message.insert(0, MessageSegment.reply(event.message_id))
    return message


class Drawings:
    """The drawings under way; ``close`` cancels them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, drawing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(drawing)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def draw_and_send(
    images: ImageMaker, outbox: Outbox, event: MessageEvent, prompt: str
) -> None:
    """Draw ``prompt`` and send the picture, or one sentence saying why there is none."""
    try:
        picture = await images.draw(prompt[:PROMPT_LIMIT], conversation=chat_of(event))
    except ContentFilterError:
        await outbox.say(event, REFUSED)
    except GLMError as error:
        logger.warning(f"glm-chat: no picture for {chat_of(event)}: {type(error).__name__}")
        await outbox.say(event, user_message(error))
    except Exception as error:
        logger.opt(exception=error).error(f"glm-chat: drawing failed in {chat_of(event)}")
        await outbox.say(event, NOT_DRAWN)
    else:
        await outbox.send(event, picture_message(event, picture.data or picture.url))
