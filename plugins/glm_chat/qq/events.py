"""OneBot v11 events in, the plugin's terms out: conversation, speaker, text; and replies."""

from __future__ import annotations

import re
from typing import Any

from nonebot import get_driver
from nonebot.adapters.onebot.v11 import (
    GroupMessageEvent,
    Message,
    MessageEvent,
    MessageSegment,
)
from nonebot.consts import CMD_ARG_KEY, CMD_KEY, CMD_WHITESPACE_KEY, PREFIX_KEY

from ..chat.service import group_key, member_key, private_key
from ..memory.models import Speaker

_NAME_LIMIT = 24
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def is_command(state: dict[str, Any]) -> bool:
    """Whether NoneBot matched a registered command (of any plugin) at the message's start.

    NoneBot resolves this for every message before any matcher runs; a command name followed
    directly by text (``/glmfoo``) does not count, as with ``force_whitespace``.
    """
    prefix = state.get(PREFIX_KEY) or {}
    if not prefix.get(CMD_KEY):
        return False
    return not prefix.get(CMD_ARG_KEY) or prefix.get(CMD_WHITESPACE_KEY) is not None


def mentions(message: Message, self_id: str) -> bool:
    """Whether ``message`` @s the bot anywhere (the adapter only strips a leading/trailing @)."""
    return any(seg.type == "at" and str(seg.data.get("qq")) == self_id for seg in message)


def question_text(message: Message, self_id: str = "") -> str:
    """What the user asked: the text, with @someone kept as a readable name, @bot dropped."""
    parts: list[str] = []
    for segment in message:
        if segment.type == "text":
            parts.append(segment.data.get("text", ""))
        elif segment.type == "at":
            qq = str(segment.data.get("qq", ""))
            if qq != self_id:
                name = "全体成员" if qq == "all" else segment.data.get("name") or qq
                parts.append(f"@{name}")
    return re.sub(r"[ \t]{2,}", " ", "".join(parts)).strip()


def speaker_of(event: MessageEvent) -> Speaker:
    """The sender as the model sees them: group card, else nickname, else the QQ id."""
    sender = event.sender
    name = (getattr(sender, "card", None) or sender.nickname or "").strip()
    name = _CONTROL.sub(" ", name)[:_NAME_LIMIT].strip() or str(event.user_id)
    return Speaker(str(event.user_id), name)


def chat_of(event: MessageEvent) -> str:
    """The chat a message belongs to: its settings and usage are kept under this key."""
    if isinstance(event, GroupMessageEvent):
        return group_key(event.group_id)
    return private_key(event.user_id)


def conversation_of(event: MessageEvent, personal: bool = False) -> tuple[str, Speaker | None]:
    """The conversation key, and the speaker label where several people share it."""
    if not isinstance(event, GroupMessageEvent):
        return private_key(event.user_id), None
    if personal:
        return member_key(event.group_id, event.user_id), None
    return group_key(event.group_id), speaker_of(event)


def images_of(event: MessageEvent) -> tuple[str, ...]:
    """Images in the message and in the message it replies to, as URLs (or base64 data)."""
    found: list[str] = []
    messages = [event.get_message()]
    if event.reply is not None:
        messages.append(event.reply.message)
    for message in messages:
        for segment in message:
            if segment.type != "image":
                continue
            source = str(segment.data.get("url") or segment.data.get("file") or "")
            if source.startswith(("http://", "https://")):
                found.append(source)
            elif source.startswith("base64://"):
                found.append(source.removeprefix("base64://"))
    return tuple(found)


def reply_to(event: MessageEvent, text: str, *, quote: bool = True) -> Message:
    """``text`` as a literal text segment, quoting ``event`` in groups."""
    message = Message(MessageSegment.text(text))
    if quote and isinstance(event, GroupMessageEvent):
        message.insert(0, MessageSegment.reply(event.message_id))
    return message


def is_superuser(event: MessageEvent) -> bool:
    """A SUPERUSER (listed as ``12345`` or ``onebot:12345``)."""
    superusers = get_driver().config.superusers
    user = str(event.user_id)
    return user in superusers or f"onebot:{user}" in superusers


def is_admin(event: MessageEvent) -> bool:
    """Group owner or admin, or a SUPERUSER; in private chat, the user owns the conversation."""
    if not isinstance(event, GroupMessageEvent):
        return True
    return event.sender.role in ("owner", "admin") or is_superuser(event)
