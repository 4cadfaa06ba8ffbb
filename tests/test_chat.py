"""The chat service over a real SQLite file and real HTTP to the fake server."""

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from functools import partial
from pathlib import Path

import pytest

from plugins.nonebot_plugin_glm_chat.chat.prompt import GROUP_NOTE
from plugins.nonebot_plugin_glm_chat.chat.queue import ChatQueues
from plugins.nonebot_plugin_glm_chat.chat.service import ChatService, ChatSettings, Question
from plugins.nonebot_plugin_glm_chat.glm.auth import KeyPool
from plugins.nonebot_plugin_glm_chat.glm.client import GLMClient
from plugins.nonebot_plugin_glm_chat.glm.errors import UpstreamError
from plugins.nonebot_plugin_glm_chat.memory.models import Speaker
from plugins.nonebot_plugin_glm_chat.memory.store import ContextStore
from tests.conftest import API_KEY_ID, API_KEY_SECRET
from tests.support.answers import ask, glm_client_for
from tests.support.fake_glm import FakeGLM, Fault

ALICE = Speaker("1001", "Alice")


async def _not_personal() -> bool:
    return False


@pytest.fixture
async def service(tmp_db: Path, fake_glm: FakeGLM, glm_base_url: str) -> AsyncIterator[ChatService]:
    client = glm_client_for(glm_base_url)
    store = await ContextStore.open(tmp_db)
    yield ChatService(store, client, ChatSettings(system_prompt="你是助手", model="glm-4-flash"))
    await client.aclose()
    await store.close()


async def test_the_second_question_carries_the_first_turn(service, fake_glm):
    first = await ask(service, Question("group:1", "我叫Alice", ALICE))
    await ask(service, Question("group:1", "我叫什么？", ALICE))
    second = fake_glm.completions()[-1].messages
    assert second[0] == {"role": "system", "content": "你是助手" + GROUP_NOTE}
    assert second[1:] == [
        {"role": "user", "content": "Alice(1001): 我叫Alice"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": "Alice(1001): 我叫什么？"},
    ]


async def test_private_chats_get_the_plain_system_prompt(service, fake_glm):
    await ask(service, Question("private:5", "hi", None))
    assert fake_glm.completions()[-1].messages[0]["content"] == "你是助手"


async def test_a_failed_call_stores_nothing(service, fake_glm):
    await ask(service, Question("group:2", "第一句", ALICE))
    fake_glm.push(*[Fault("error", 500, "500", "internal")] * 2)
    with pytest.raises(UpstreamError):
        await ask(service, Question("group:2", "第二句", ALICE))
    assert [t.question for t in await service.store.recent("group:2", 10)] == ["第一句"]


async def test_prompt_too_long_is_trimmed_harder_once(service, fake_glm):
    for i in range(6):
        await ask(service, Question("group:3", f"问题{i} " + "长" * 400, ALICE))
    fake_glm.push(Fault("error", 400, "1261", "prompt too long"))
    await ask(service, Question("group:3", "最后", ALICE))
    refused, retried = (r.messages for r in fake_glm.completions()[-2:])
    assert len(retried) < len(refused)
    assert retried[-1]["content"] == "Alice(1001): 最后"


async def test_questions_queued_in_one_chat_are_answered_in_order(service, fake_glm):
    fake_glm.latency = 0.05
    queues = ChatQueues(lambda chat: _not_personal())
    try:
        answers = await asyncio.gather(
            *(
                queues.submit(
                    "group:4", partial(ask, service, Question("group:4", f"第{i}条", ALICE))
                )
                for i in range(5)
            )
        )
    finally:
        fake_glm.latency = 0.0
    # Each request saw every earlier turn: 1 system + 2 per earlier turn + the question.
    assert [len(r.messages) for r in fake_glm.completions()] == [2, 4, 6, 8, 10]
    assert [a.content for a in answers] == [
        f"回声#{2 + 2 * i}：Alice(1001): 第{i}条" for i in range(5)
    ]
    stored = await service.store.recent("group:4", 10)
    assert [t.question for t in stored] == [f"第{i}条" for i in range(5)]


async def test_reset_and_status(service):
    await ask(service, Question("group:6", "记住这个", ALICE))
    status = await service.status("group:6")
    assert (status.turns, status.model, status.call_mode) == (1, "glm-4-flash", "stream")
    assert status.tokens > 0
    assert await service.reset("group:6") == 1
    assert (await service.status("group:6")).turns == 0


async def test_options_are_cached_within_a_bound(service, monkeypatch):
    from plugins.nonebot_plugin_glm_chat.chat import service as chat_module

    monkeypatch.setattr(chat_module, "OPTIONS_CACHED", 3)
    await service.update_options("group:1", persona="猫")
    for group in range(2, 6):
        await service.options(f"group:{group}")
    assert len(service._options) == 3
    assert (await service.options("group:1")).persona == "猫"  # read back from the store


async def test_thinking_and_web_search_go_into_the_request(tmp_db, fake_glm, glm_base_url):
    client = GLMClient(KeyPool([f"{API_KEY_ID}.{API_KEY_SECRET}"], "jwt"), base_url=glm_base_url)
    store = await ContextStore.open(tmp_db)
    settings = ChatSettings(system_prompt="p", model="glm-4.5", thinking="disabled")
    service = ChatService(store, client, settings)
    try:
        await service.update_options("group:8", web_search=True)
        await ask(service, Question("group:8", "想一想", ALICE))
    finally:
        await client.aclose()
        await store.close()
    body = fake_glm.completions()[-1].body
    assert body["thinking"] == {"type": "disabled"}
    assert body["tools"][0]["type"] == "web_search"


async def test_an_answer_not_handed_over_is_not_stored_but_its_tokens_count(service, fake_glm):
    async def refused(completion) -> bool:
        return False

    completion = await service.answer(Question("group:9", "发不出去", ALICE), refused)
    assert await service.store.recent("group:9", 10) == []
    spent = completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert spent > 0
    assert await service.store.tokens_on("group:9", date.today().isoformat()) == spent
