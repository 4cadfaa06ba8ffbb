"""Echo the question back: the least a chat plugin can do per message.

With ``ECHO_EVERY_MESSAGE=1`` in the environment it echoes every message, addressed or not:
NoneBot's floor for a message that a plugin reads.
"""

import os

from nonebot import on_message
from nonebot.adapters.onebot.v11 import GroupMessageEvent, Message, MessageEvent, MessageSegment
from nonebot.rule import to_me

every = os.environ.get("ECHO_EVERY_MESSAGE") == "1"
echo = on_message(rule=None if every else to_me(), priority=50, block=True)


@echo.handle()
async def _(event: MessageEvent) -> None:
    reply = Message(MessageSegment.text(event.get_plaintext()))
    if isinstance(event, GroupMessageEvent):
        reply.insert(0, MessageSegment.reply(event.message_id))
    await echo.finish(reply)
