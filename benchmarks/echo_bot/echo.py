"""Echo the question back: the least a chat plugin can do per message."""

from nonebot import on_message
from nonebot.adapters.onebot.v11 import GroupMessageEvent, Message, MessageEvent, MessageSegment
from nonebot.rule import to_me

echo = on_message(rule=to_me(), priority=50, block=True)


@echo.handle()
async def _(event: MessageEvent) -> None:
    reply = Message(MessageSegment.text(event.get_plaintext()))
    if isinstance(event, GroupMessageEvent):
        reply.insert(0, MessageSegment.reply(event.message_id))
    await echo.finish(reply)
