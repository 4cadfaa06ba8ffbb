"""The chat matcher: an @mention, a reply to the bot, or a private message gets an answer.

It runs before the command matchers and leaves every registered command to them: checking a
matcher costs NoneBot about as much CPU as the whole echo of a message, so a chat message
should meet one matcher, not three (see benchmarks/cost.py).
"""

from __future__ import annotations

from datetime import date

from nonebot import on_message
from nonebot.adapters.onebot.v11 import Bot, GroupMessageEvent, MessageEvent
from nonebot.log import logger
from nonebot.rule import Rule
from nonebot.typing import T_State

from ..chat.limits import Verdict
from ..chat.service import Question
from ..glm.errors import GLMError, ModelNotFoundError, user_message
from ..ordering import in_turn, pass_by
from ..runtime import Services, get_services
from .delivery import deliver
from .events import (
    chat_of,
    conversation_of,
    images_of,
    is_admin,
    is_command,
    mentions,
    question_text,
    reply_to,
)
from .render import answer_text

EMPTY_HINT = "有什么想问的？在@我的同一条消息里写上问题就好。"
TRUNCATED_NOTE = "（消息太长，只读了前 {limit} 个字。）"
UNEXPECTED_ERROR = "出了点意外，没能回答，请稍后再试。"
COOLDOWN_NOTE = "慢一点哦，{seconds} 秒后再问吧。"
QUOTA_NOTE = "本群今天的 token 额度（{limit}）用完了，明天再来吧。"
UNKNOWN_MODEL = "模型 {model} 不存在（平台错误 1211），请机器人主人用 /glm model 换一个。"


def _wants_an_answer(event: MessageEvent, state: T_State) -> bool:
    if is_command(state):
        return False
    if event.user_id == event.self_id:
        return False
    config = get_services().config
    if str(event.user_id) in config.glm_ignore_users:
        return False
    if not isinstance(event, GroupMessageEvent):
        return True
    if config.glm_groups and event.group_id not in config.glm_groups:
        return False
    return event.to_me or mentions(event.get_message(), str(event.self_id))


# Rule and handler take few parameters: NoneBot spawns a task to resolve each one.
async def _is_for_me(event: MessageEvent, state: T_State) -> bool:
    if _wants_an_answer(event, state):
        return True
    pass_by(state)
    return False


CHAT_PRIORITY = 10  # before the commands (20): see the module docstring
chat = on_message(rule=Rule(_is_for_me), priority=CHAT_PRIORITY, block=True)


@chat.handle()
async def answer(bot: Bot, event: MessageEvent, state: T_State) -> None:
    async with in_turn(state):
        await _answer(bot, event)


async def _answer(bot: Bot, event: MessageEvent) -> None:
    services = get_services()
    config = services.config
    chat_key = chat_of(event)
    options = await services.chat.options(chat_key)
    if not options.enabled:
        return
    images = images_of(event)
    question = question_text(event.get_message(), str(event.self_id))
    if not question and not images:
        await bot.send(event, reply_to(event, EMPTY_HINT))
        return
    refusal = None if is_admin(event) else await _over_limit(services, event, chat_key)
    if refusal is not None:
        if refusal:  # empty: already told, stay quiet
            await bot.send(event, reply_to(event, refusal))
        return
    notes: list[str] = []
    if len(question) > config.glm_max_input_chars:
        question = question[: config.glm_max_input_chars]
        notes.append(TRUNCATED_NOTE.format(limit=config.glm_max_input_chars))

    conversation, speaker = conversation_of(event, options.personal)
    asked = Question(conversation, question, speaker, chat_key, images)
    try:
        completion = await services.chat.ask(asked)
    except ModelNotFoundError:
        text = UNKNOWN_MODEL.format(model=services.chat.model_for(options, asked))
    except GLMError as error:
        logger.warning(f"glm-chat: no answer for {conversation}: {type(error).__name__}: {error}")
        text = user_message(error)
    except Exception as error:
        logger.opt(exception=error).error(f"glm-chat: unexpected failure in {conversation}")
        text = UNEXPECTED_ERROR
    else:
        text = answer_text(completion)
    await deliver(bot, event, "\n".join([*notes, text]), config.glm_forward_chars)


async def _over_limit(services: Services, event: MessageEvent, chat_key: str) -> str | None:
    """Why a member may not ask now ("" when they were already told), or None."""
    config = services.config
    window = config.glm_cooldown
    if window > 0:
        user = f"{chat_key}:{event.user_id}"
        verdict = services.cooldown.check(user, window)
        if verdict is Verdict.WARN:
            wait = services.cooldown.remaining(user, window)
            return COOLDOWN_NOTE.format(seconds=max(1, round(wait)))
        if verdict is Verdict.QUIET:
            return ""
    if config.glm_daily_tokens > 0 and isinstance(event, GroupMessageEvent):
        today = date.today().isoformat()
        if await services.chat.store.tokens_on(chat_key, today) >= config.glm_daily_tokens:
            if not services.quota_notices.first_today(chat_key):
                return ""
            return QUOTA_NOTE.format(limit=config.glm_daily_tokens)
    return None
