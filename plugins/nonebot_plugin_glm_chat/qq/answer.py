"""Answering a question from QQ: limits, the model's answer, its delivery, and what is said when
something fails. Runs in its turn in the chat's queue (see ``intake``)."""

from __future__ import annotations

from nonebot.adapters.onebot.v11 import GroupMessageEvent, MessageEvent
from nonebot.log import logger

from ..chat.context import Quote
from ..chat.limits import Verdict
from ..chat.service import Question
from ..glm.completion import Completion
from ..glm.errors import GLMError, ModelNotFoundError, user_message
from ..runtime import Services, get_services
from ..tools.base import ToolContext
from .delivery import Outbox
from .drawing import picture_message
from .events import (
    chat_of,
    conversation_of,
    images_of,
    is_exempt,
    question_text,
    quote_of,
    replied_to,
    speaker_of,
)
from .render import answer_text

EMPTY_HINT = "有什么想问的？在@我的同一条消息里写上问题就好。"
EMPTY_HINT_PRIVATE = "有什么想问的？直接发给我就好。"
TRUNCATED_NOTE = "（消息太长，只读了前 {limit} 个字。）"
UNEXPECTED_ERROR = "出了点意外，没能回答，请稍后再试。"
COOLDOWN_NOTE = "慢一点哦，{seconds} 秒后再问吧。"
QUOTA_NOTE = "本群今天的 token 额度（{limit}）用完了，明天再来吧。"
QUOTA_NOTE_PRIVATE = "你今天的 token 额度（{limit}）用完了，明天再来吧。"
UNKNOWN_MODEL = "模型 {model} 不存在（平台错误 1211），请机器人主人用 /glm model 换一个。"
UNKNOWN_VISION_MODEL = (
    "识图模型 {model} 不存在（平台错误 1211），请机器人主人修改 GLM_VISION_MODEL 设置。"
)


async def answer(outbox: Outbox, event: MessageEvent, heard_until: int | None = None) -> bool:
    """Answer ``event``: the reply is stored as a turn only once QQ accepted it. In a group the
    question carries the background heard before ``heard_until``, and any quoted message.
    Returns False when the bot stays silent (the chat is off, the asker was told already), so
    that the host bot's other plugins may take the message."""
    services = get_services()
    config = services.config
    chat_key = chat_of(event)
    options = await services.chat.options(chat_key)
    if not options.enabled:
        return False
    images = images_of(event)
    question = question_text(event.get_message(), str(event.self_id))
    if not question and not images:
        group = isinstance(event, GroupMessageEvent)
        await outbox.say(event, EMPTY_HINT if group else EMPTY_HINT_PRIVATE)
        return True
    refusal = None if is_exempt(event) else await over_limit(services, event, chat_key)
    if refusal is not None:
        if refusal:  # empty: already told, stay quiet
            await outbox.say(event, refusal)
        return bool(refusal)
    notes: list[str] = []
    if len(question) > config.glm_max_input_chars:
        question = question[: config.glm_max_input_chars]
        notes.append(TRUNCATED_NOTE.format(limit=config.glm_max_input_chars))

    conversation, speaker = conversation_of(event, options.personal)
    group = isinstance(event, GroupMessageEvent)
    asked = Question(
        conversation,
        question,
        speaker,
        chat_key,
        images,
        heard_until=heard_until if group else None,
        quote=await _quote(services, event, chat_key, heard_until),
    )

    async def hand_over(completion: Completion) -> bool:
        text = "\n".join([*notes, answer_text(completion)])
        return await outbox.answer(event, text, config.glm_forward_chars)

    try:
        await services.chat.answer(asked, hand_over, act=_acting(outbox, event, chat_key))
    except ModelNotFoundError:
        model = services.chat.model_for(options, asked)
        await outbox.say(
            event, (UNKNOWN_VISION_MODEL if images else UNKNOWN_MODEL).format(model=model)
        )
    except GLMError as error:
        logger.warning(f"glm-chat: no answer for {conversation}: {type(error).__name__}: {error}")
        await outbox.say(event, user_message(error))
    except Exception as error:
        logger.opt(exception=error).error(f"glm-chat: unexpected failure in {conversation}")
        await outbox.say(event, UNEXPECTED_ERROR)
    return True


def _acting(outbox: Outbox, event: MessageEvent, chat_key: str) -> ToolContext:
    """What the bot's tools may do while answering ``event``: send pictures there (quoting
    it), and look up the group's name."""
    speaker = speaker_of(event)

    async def send_image(image: bytes | str) -> bool:
        return await outbox.send(event, picture_message(event, image))

    async def group_name() -> str:
        return (
            await outbox.group_name(event.group_id) if isinstance(event, GroupMessageEvent) else ""
        )

    return ToolContext(chat_key, speaker.user_id, speaker.name, group_name, send_image)


async def _quote(
    services: Services, event: MessageEvent, chat_key: str, heard_until: int | None
) -> Quote | None:
    """The message ``event`` replies to: as QQ looked it up, else as the bot heard it."""
    quote = quote_of(event)
    if quote is not None or event.reply is not None:
        return quote
    quoted = replied_to(event)
    if quoted is None or quoted in services.sent or heard_until is None:
        return None
    if not isinstance(event, GroupMessageEvent):
        return None
    heard = await services.reading.find(chat_key, quoted, heard_until)
    return Quote(heard.text, heard.speaker) if heard is not None else None


async def over_limit(services: Services, event: MessageEvent, chat_key: str) -> str | None:
    """Why the sender may not ask now ("" when they were already told), or None."""
    config = services.config
    window = config.glm_cooldown
    if window > 0:
        user = f"{chat_key}:{event.user_id}"
        verdict, wait = await services.cooldown.ask(user, window)
        if verdict is Verdict.WARN:
            return COOLDOWN_NOTE.format(seconds=max(1, round(wait)))
        if verdict is Verdict.QUIET:
            return ""
    if await services.chat.spent_today(chat_key, config.glm_daily_tokens):
        if not await services.quota_notices.first_today(chat_key):
            return ""
        note = QUOTA_NOTE if isinstance(event, GroupMessageEvent) else QUOTA_NOTE_PRIVATE
        return note.format(limit=config.glm_daily_tokens)
    return None
