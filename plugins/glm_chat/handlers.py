"""The chat matcher: an @mention, a reply to the bot, or a private message gets an answer.

It runs before the command matchers and leaves every registered command to them: checking a
matcher costs NoneBot about as much CPU as the whole echo of a message, so a chat message
should meet one matcher, not three (see benchmarks/cost.py).
"""

from __future__ import annotations

from nonebot import on_message
from nonebot.adapters.onebot.v11 import GroupMessageEvent, MessageEvent
from nonebot.log import logger
from nonebot.rule import Rule
from nonebot.typing import T_State

from .errors import GLMError, user_message
from .events import conversation_of, is_command, mentions, question_text, reply_to
from .ordering import in_turn, pass_by
from .render import markdown_to_text, split_text
from .runtime import get_services

EMPTY_HINT = "有什么想问的？在@我的同一条消息里写上问题就好。"
TRUNCATED_NOTE = "（消息太长，只读了前 {limit} 个字。）"
UNEXPECTED_ERROR = "出了点意外，没能回答，请稍后再试。"


def _wants_an_answer(event: MessageEvent, state: T_State) -> bool:
    if is_command(state):
        return False
    if event.user_id == event.self_id:
        return False
    if str(event.user_id) in get_services().config.glm_ignore_users:
        return False
    if not isinstance(event, GroupMessageEvent):
        return True
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
async def answer(event: MessageEvent, state: T_State) -> None:
    async with in_turn(state):
        await _answer(event)


async def _answer(event: MessageEvent) -> None:
    services = get_services()
    question = question_text(event.get_message(), str(event.self_id))
    if not question:
        await chat.finish(reply_to(event, EMPTY_HINT))

    notes: list[str] = []
    limit = services.config.glm_max_input_chars
    if len(question) > limit:
        question = question[:limit]
        notes.append(TRUNCATED_NOTE.format(limit=limit))

    conversation, speaker = conversation_of(event)
    try:
        completion = await services.chat.ask(conversation, question, speaker)
    except GLMError as error:
        logger.warning(f"glm-chat: no answer for {conversation}: {type(error).__name__}: {error}")
        text = user_message(error)
    except Exception as error:
        logger.opt(exception=error).error(f"glm-chat: unexpected failure in {conversation}")
        text = UNEXPECTED_ERROR
    else:
        text = markdown_to_text(completion.content)

    pieces = split_text("\n".join([*notes, text]))
    for index, piece in enumerate(pieces):
        await chat.send(reply_to(event, piece, quote=index == 0))
