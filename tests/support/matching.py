"""Helpers for nonebug tests of the plugin's matchers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from nonebot.adapters.onebot.v11 import Bot, Message, MessageEvent, MessageSegment
from nonebug import App

from plugins.nonebot_plugin_glm_chat import runtime
from plugins.nonebot_plugin_glm_chat.memory.models import Turn
from plugins.nonebot_plugin_glm_chat.runtime import get_services
from tests.support.events import SELF_ID


def quoted(event: MessageEvent, text: str) -> Message:
    return Message([MessageSegment.reply(event.message_id), MessageSegment.text(text)])


def plain(text: str) -> Message:
    return Message(MessageSegment.text(text))


async def receive(app: App, event: MessageEvent, *replies: Message) -> None:
    """Deliver ``event`` to every matcher and expect exactly ``replies``, in order."""
    async with app.test_matcher() as ctx:
        bot = ctx.create_bot(base=Bot, self_id=str(SELF_ID))
        ctx.receive_event(bot, event)
        for reply in replies:
            ctx.should_call_send(event, reply, result={"message_id": 1})


async def stored(conversation: str) -> list[Turn]:
    return await get_services().chat.store.recent(conversation, 100)


async def seed(conversation: str) -> None:
    await get_services().chat.store.append_turn(conversation, Turn("旧问题", "旧回答"))


def configure(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
    """Run the plugin with some settings changed, for one test."""
    services = get_services()
    config = services.config.model_copy(update=settings)
    monkeypatch.setattr(runtime, "_services", dataclasses.replace(services, config=config))
