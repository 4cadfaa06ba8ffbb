"""Fake OneBot v11 events for nonebug tests (the adapter's own to_me processing is skipped)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from nonebot.adapters.onebot.v11 import (
    GroupMessageEvent,
    Message,
    MessageSegment,
    PrivateMessageEvent,
)
from nonebot.adapters.onebot.v11.event import Sender

SELF_ID = 2000
_message_ids = itertools.count(1000)


def _message_fields(message: Message, user_id: int, **sender: Any) -> dict[str, Any]:
    """What every message event carries."""
    return {
        "time": int(time.time()),
        "self_id": SELF_ID,
        "post_type": "message",
        "user_id": user_id,
        "message_id": next(_message_ids),
        "message": message,
        "original_message": message.copy(),
        "raw_message": str(message),
        "font": 0,
        "sender": Sender(user_id=user_id, **sender),
    }


def group_message(
    text: str | Message,
    *,
    group_id: int = 1,
    user_id: int = 42,
    nickname: str = "小明",
    card: str = "",
    role: str = "member",
    to_me: bool = True,
) -> GroupMessageEvent:
    message = Message(MessageSegment.text(text)) if isinstance(text, str) else text
    return GroupMessageEvent(
        **_message_fields(message, user_id, nickname=nickname, card=card, role=role),
        message_type="group",
        sub_type="normal",
        group_id=group_id,
        to_me=to_me,
    )


def private_message(text: str, *, user_id: int = 42, nickname: str = "小明") -> PrivateMessageEvent:
    return PrivateMessageEvent(
        **_message_fields(Message(MessageSegment.text(text)), user_id, nickname=nickname),
        message_type="private",
        sub_type="friend",
        to_me=True,
    )
