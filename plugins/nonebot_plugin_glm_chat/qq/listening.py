"""A group's messages that are not for the bot: kept as background, and now and then answered
with an unprompted remark (``/glm chime``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

from nonebot.adapters.onebot.v11 import Bot, GroupMessageEvent
from nonebot.log import logger

from ..chat.service import group_key
from ..glm.completion import Completion
from ..glm.errors import GLMError
from ..memory.models import Heard
from ..runtime import Services, get_services
from .delivery import Outbox
from .events import heard_text, speaker_of
from .render import answer_text


async def overhear(
    bot: Bot, event: GroupMessageEvent, services: Services, seq: int
) -> Callable[[], Awaitable[None]] | None:
    """Keep a plain group message (numbered ``seq`` as it arrived, see ``ReadingAlong``) as
    background, when the group lets the bot read along; the remark it prompts, if any."""
    chat = group_key(event.group_id)
    reading = services.reading
    heard = None
    try:
        options = await services.chat.options(chat)
        text = heard_text(event.get_message())
        if (
            options.listen
            and options.enabled
            and reading.on
            and text
            and reading.first_time((chat, event.user_id, event.time, text), str(event.self_id))
        ):
            heard = Heard(seq, speaker_of(event), text, str(event.message_id), time.time())
    finally:  # settled whatever happens: later questions wait for it
        if heard is None:
            reading.pass_over(seq)
        else:
            reading.hear(chat, heard)
    if heard is None or not services.chime.due(chat, options.chime):
        return None
    return partial(remark, Outbox(bot, services.sent), event, seq + 1)


async def remark(outbox: Outbox, event: GroupMessageEvent, heard_until: int) -> None:
    """Speak up on the group's recent background (in its turn in the chat's queue); stays
    silent on any failure, since nobody asked."""
    services = get_services()
    chat = group_key(event.group_id)
    if await services.chat.spent_today(chat, services.config.glm_daily_tokens):
        return

    async def hand_over(completion: Completion) -> bool:
        text = answer_text(completion)
        return await outbox.answer(event, text, services.config.glm_forward_chars, quote=False)

    try:
        await services.chat.remark(chat, heard_until, hand_over)
    except GLMError as error:
        logger.warning(f"glm-chat: no remark in {chat}: {type(error).__name__}: {error}")
    except Exception as error:
        logger.opt(exception=error).error(f"glm-chat: unexpected failure of a remark in {chat}")
