"""Driving ``ChatService.answer`` directly, as if every answer reached QQ, with a client of
the fake server."""

from __future__ import annotations

from plugins.nonebot_plugin_glm_chat.chat.service import ChatService, Question
from plugins.nonebot_plugin_glm_chat.glm.auth import KeyPool
from plugins.nonebot_plugin_glm_chat.glm.client import Backoff, GLMClient
from plugins.nonebot_plugin_glm_chat.glm.completion import Completion
from tests.conftest import API_KEY_ID, API_KEY_SECRET


def glm_client_for(base_url: str, max_retries: int = 1) -> GLMClient:
    """A client of the fake server with the test key, quick to retry."""
    return GLMClient(
        KeyPool([f"{API_KEY_ID}.{API_KEY_SECRET}"], "jwt"),
        base_url=base_url,
        timeout=5,
        max_retries=max_retries,
        backoff=Backoff(base=0.01, cap=0.02),
    )


async def handed_over(completion: Completion) -> bool:
    """A hand-over that always gets through."""
    return True


async def ask(service: ChatService, question: Question) -> Completion:
    """Answer ``question`` and store its turn."""
    return await service.answer(question, handed_over)
