"""OneBot v11 events in, the plugin's terms out: conversation, speaker, text; and replies."""

from __future__ import annotations

import re
from collections.abc import Iterable

from nonebot import get_driver
from nonebot.adapters.onebot.v11 import (
    GroupMessageEvent,
    Message,
    MessageEvent,
    MessageSegment,
)
from nonebot.adapters.onebot.v11.event import Sender

from ..chat.context import Quote
from ..chat.labels import clean_name
from ..chat.service import group_key, member_key, private_key
from ..memory.models import Speaker


def glm_command(message: Message, starts: Iterable[str]) -> tuple[str, str] | None:
    """``(subcommand, argument)`` when ``message`` is ``/glm ...`` or ``/重置对话 ...``.

    The command must stand alone (``/glmfoo`` is not one); any whitespace separates the words,
    the full-width space of Chinese input methods included.
    """
    if message and message[0].type == "reply":  # the QQ client could not look it up
        message = message[1:]
    if not message or message[0].type != "text":
        return None
    head = message[0].data.get("text", "").lstrip()
    for start in sorted(starts, key=len, reverse=True):
        for name, alias_of in COMMAND_NAMES.items():
            word = start + name
            if head.startswith(word) and (len(head) == len(word) or head[len(word)].isspace()):
                rest = Message([MessageSegment.text(head[len(word) :]), *message[1:]])
                text = rest.extract_plain_text().strip()
                if alias_of is not None:
                    return alias_of, text
                words = text.split(maxsplit=1) or ["help"]
                return words[0].lower(), words[1].strip() if len(words) > 1 else ""
    return None


# The command, and its aliases with the subcommand they stand for.
COMMAND_NAMES: dict[str, str | None] = {"glm": None, "重置对话": "reset"}


def mentions(message: Message, self_id: str) -> bool:
    """Whether ``message`` @s the bot anywhere (the adapter only strips a leading/trailing @)."""
    return any(seg.type == "at" and str(seg.data.get("qq")) == self_id for seg in message)


def question_text(message: Message, self_id: str = "") -> str:
    """What the user asked: the text, with @someone kept as a readable name, @bot dropped
    (images go to the model as images)."""
    return _readable(message, self_id, {})


# What the model reads for a segment it cannot see, in a message it reads along with or quotes.
MARKS = {
    "image": "[图片]",
    "face": "[表情]",
    "mface": "[表情]",
    "record": "[语音]",
    "video": "[视频]",
    "file": "[文件]",
    "forward": "[聊天记录]",
    "json": "[卡片]",
    "xml": "[卡片]",
    "share": "[链接]",
    "location": "[位置]",
    "music": "[音乐]",
    "dice": "[骰子]",
    "rps": "[猜拳]",
}


def heard_text(message: Message) -> str:
    """A message as background or a quote: its text, @names, and marks such as [图片]."""
    return _readable(message, "", MARKS)


def _readable(message: Message, self_id: str, marks: dict[str, str]) -> str:
    parts: list[str] = []
    for segment in message:
        if segment.type == "text":
            parts.append(segment.data.get("text", ""))
        elif segment.type == "at":
            qq = str(segment.data.get("qq", ""))
            if qq != self_id:
                name = "全体成员" if qq == "all" else segment.data.get("name") or qq
                parts.append(f"@{name}")
        elif segment.type in marks:
            parts.append(marks[segment.type])
    return re.sub(r"[ \t]{2,}", " ", "".join(parts)).strip()


def speaker_of(event: MessageEvent) -> Speaker:
    """The sender as the model sees them: group card, else nickname, else the QQ id."""
    return _speaker(event.sender, str(event.user_id))


def _speaker(sender: Sender, user: str) -> Speaker:
    name = clean_name(getattr(sender, "card", None) or "", "")
    return Speaker(user, name or clean_name(sender.nickname or "", user))


def quote_of(event: MessageEvent) -> Quote | None:
    """The message ``event`` replies to, as QQ looked it up; None for none, for one with no
    text, and for the bot's own (its answers are in the conversation already)."""
    reply = event.reply
    if reply is None:
        return None
    text = heard_text(reply.message)
    user = str(reply.sender.user_id) if reply.sender.user_id is not None else ""
    if not text or user == str(event.self_id):
        return None
    if not isinstance(event, GroupMessageEvent):
        return Quote(text)
    return Quote(text, _speaker(reply.sender, user or "?"))


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
    return not isinstance(event, GroupMessageEvent) or is_exempt(event)


def is_exempt(event: MessageEvent) -> bool:
    """Free of cooldowns and quotas: SUPERUSERS, and in their group its owner and admins."""
    if isinstance(event, GroupMessageEvent) and event.sender.role in ("owner", "admin"):
        return True
    return is_superuser(event)


def replied_to(event: MessageEvent) -> str | None:
    """The id of the message ``event`` quotes, whether or not the QQ client could look it up."""
    if event.reply is not None:
        return str(event.reply.message_id)
    for segment in event.original_message:
        if segment.type == "reply":
            return str(segment.data.get("id"))
    return None
