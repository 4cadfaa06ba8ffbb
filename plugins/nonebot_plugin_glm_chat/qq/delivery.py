"""Getting text into QQ: quoted replies, a merged forward message when an answer is long, plain
pieces under QQ's length limit when a forward is refused; and the ids of what was sent.

Nothing here raises for a send that QQ refused or a connection that is gone: the caller learns
whether the text was handed over, and the log gets one line.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from nonebot import get_bots
from nonebot.adapters.onebot.v11 import (
    Bot,
    GroupMessageEvent,
    Message,
    MessageEvent,
    MessageSegment,
)
from nonebot.exception import ActionFailed, AdapterException, DriverException
from nonebot.log import logger

from .events import reply_to
from .render import split_text

# Paragraph-sized nodes read well in a forward message.
FORWARD_NODE_CHARS = 1500
BOT_NAME = "GLM"
# A forward message cannot quote; in a group this quoted line tells the asker it is theirs.
FORWARD_POINTER = "↑ 回答比较长，整理成了上面的聊天记录。"
RECENT_IDS = 4096


class RecentIds:
    """The ids of the last ``size`` messages the bot sent (a reply to one is addressed to it)."""

    def __init__(self, size: int = RECENT_IDS) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, message_id: object) -> bool:
        return str(message_id) in self._ids

    def add(self, result: Any) -> None:
        """Remember the ``message_id`` of a send's result, if it has one."""
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if message_id is None:
            return
        self._ids[str(message_id)] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


class Outbox:
    """Sends for one bot account; ``sent`` learns the id of every message QQ accepted."""

    def __init__(self, bot: Bot, sent: RecentIds) -> None:
        self._bot = bot
        self._sent = sent

    async def send(self, event: MessageEvent, message: Message) -> bool:
        """``message`` to the chat ``event`` came from."""
        return await self._hand_over("send", lambda bot: bot.send(event, message))

    async def _hand_over(self, what: str, action: Callable[[Bot], Awaitable[Any]]) -> bool:
        """Run one send action; False (and one log line) when QQ refused it or is unreachable.

        A connection that dropped and came back is tried once more on the new connection.
        """
        for attempt in range(2):
            try:
                result = await action(self._bot)
            except ActionFailed as error:
                logger.warning(f"glm-chat: QQ refused {what}: {_reason(error)}")
                return False
            except (AdapterException, DriverException, OSError, RuntimeError) as error:
                # The connection is gone (or went while sending): a new one may be there.
                again = get_bots().get(self._bot.self_id)
                if attempt or not isinstance(again, Bot) or again is self._bot:
                    logger.warning(f"glm-chat: {what} not delivered: {type(error).__name__}")
                    return False
                self._bot = again
            else:
                self._sent.add(result)
                return True
        return False

    async def group_name(self, group_id: int) -> str:
        """The group's name as QQ knows it ("" when QQ does not say)."""
        try:
            info = await self._bot.get_group_info(group_id=group_id)
        except (ActionFailed, AdapterException, DriverException, OSError, RuntimeError):
            return ""
        name = info.get("group_name") if isinstance(info, dict) else None
        return name if isinstance(name, str) else ""

    async def say(self, event: MessageEvent, text: str) -> bool:
        """``text`` as a reply to ``event`` (quoting it in groups)."""
        return await self.send(event, reply_to(event, text))

    async def answer(
        self, event: MessageEvent, text: str, forward_above: int, *, quote: bool = True
    ) -> bool:
        """``text`` as the answer to ``event``: True only when QQ accepted all of it.

        Longer than ``forward_above``: one forward message (plus a quoted pointer in groups; the
        answer counts as delivered with the forward even if the pointer is refused), or, if the
        forward is refused, plain pieces of which every one must go through. ``quote``: the
        first piece quotes ``event`` (in groups).
        """
        if len(text) > forward_above and await self._forward(event, text):
            if quote and isinstance(event, GroupMessageEvent):
                await self.say(event, FORWARD_POINTER)
            return True
        for index, piece in enumerate(split_text(text)):
            if not await self.send(event, reply_to(event, piece, quote=quote and index == 0)):
                return False
        return True

    async def _forward(self, event: MessageEvent, text: str) -> bool:
        nodes = Message(
            MessageSegment.node_custom(
                int(self._bot.self_id), BOT_NAME, Message(MessageSegment.text(piece))
            )
            for piece in split_text(text, FORWARD_NODE_CHARS)
        )
        if isinstance(event, GroupMessageEvent):
            target = {"group_id": event.group_id}
            api = "send_group_forward_msg"
        else:
            target = {"user_id": event.user_id}
            api = "send_private_forward_msg"
        return await self._hand_over(api, lambda bot: bot.call_api(api, messages=nodes, **target))


def _reason(error: ActionFailed) -> str:
    """What QQ said, briefly: its retcode and message when it gave them."""
    info = getattr(error, "info", None)
    if not isinstance(info, dict):
        return type(error).__name__
    said = info.get("wording") or info.get("message") or info.get("msg") or ""
    return f"retcode={info.get('retcode')} {said}".strip()
