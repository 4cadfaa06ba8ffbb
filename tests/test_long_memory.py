"""Long memory and the prompt budget: summaries folded after answers, background, quotes, and
a prompt that fits ``GLM_CONTEXT_TOKENS`` at turn 500 (real SQLite, real HTTP to the fake)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from plugins.nonebot_plugin_glm_chat.chat.context import BACKGROUND_HEADER, CHIME_CUE, Quote
from plugins.nonebot_plugin_glm_chat.chat.prompt import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    SUMMARY_HEADER,
    build_prompt,
    estimate_tokens,
)
from plugins.nonebot_plugin_glm_chat.chat.reading import ReadingAlong
from plugins.nonebot_plugin_glm_chat.chat.service import ChatService, ChatSettings, Question
from plugins.nonebot_plugin_glm_chat.chat.summary import Summarizer, summary_chars
from plugins.nonebot_plugin_glm_chat.memory.models import Heard, Speaker, Summary, Turn
from tests.support.answers import ask, glm_client_for
from tests.support.fake_glm import FakeGLM, Fault
from tests.support.stores import StoreAt

ALICE, BOB = Speaker("11", "Alice"), Speaker("12", "Bob")
WINDOW = 4


def prompt_tokens(messages: list[dict]) -> int:
    """The request as our budget counts it."""
    total = 0
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            text = " ".join(part.get("text", "") for part in content)
            images = sum(part.get("type") == "image_url" for part in content)
            total += estimate_tokens(text) + images * IMAGE_TOKENS
        else:
            total += estimate_tokens(content)
        total += MESSAGE_OVERHEAD
    return total


@pytest.fixture
async def parts(store_at: StoreAt, glm_base_url: str) -> AsyncIterator[tuple]:
    client = glm_client_for(glm_base_url, max_retries=0)
    store = await store_at.open()
    yield store, client
    await client.aclose()
    await store.close()


def service_of(store, client, *, window=WINDOW, budget=6000, summaries=True) -> ChatService:
    reading = ReadingAlong(store.background, keep=20, minutes=60)
    summarizer = None
    if summaries:
        summarizer = Summarizer(
            store, client, model="glm-4-flash", mode="stream", window=window, context_tokens=budget
        )
    settings = ChatSettings(
        system_prompt="你是助手", model="glm-4-flash", history_turns=window, context_tokens=budget
    )
    return ChatService(store, client, settings, reading=reading, summarizer=summarizer)


async def folds_done(service: ChatService) -> None:
    assert service.summarizer is not None
    for _ in range(500):
        if not service.summarizer._running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the summary never finished")


async def test_turns_that_leave_the_window_reach_later_requests_through_the_summary(
    parts, fake_glm: FakeGLM
):
    service = service_of(*parts)
    await ask(service, Question("group:1", "我的猫叫团子", ALICE))
    for index in range(WINDOW):
        await ask(service, Question("group:1", f"闲聊{index}", BOB))
        await folds_done(service)
    # Five turns, window four: the oldest three are folded in one call after the answer.
    assert len(fake_glm.summaries()) == 1
    await ask(service, Question("group:1", "我的猫叫什么？", ALICE))
    sent = fake_glm.completions()[-1].messages
    assert SUMMARY_HEADER.strip() in sent[0]["content"]
    assert "Alice(11): 我的猫叫团子" in sent[0]["content"]
    assert all("我的猫叫团子" not in m["content"] for m in sent[1:-1])  # not twice
    status = await service.status("group:1")
    assert status.summary is not None and status.summary.turns == 3


async def test_a_failed_summary_changes_nothing_and_the_next_one_folds_it_in(
    parts, fake_glm: FakeGLM
):
    service = service_of(*parts)
    fake_glm.push_summary(Fault("error", status=500, code="500", message="boom"))
    for index in range(WINDOW + 1):
        await ask(service, Question("private:1", f"事实{index}"))
        await folds_done(service)
    assert await parts[0].summary("private:1") is None
    await ask(service, Question("private:1", "再来"))
    await folds_done(service)
    summary = await parts[0].summary("private:1")
    assert summary is not None and "事实0" in fake_glm.summaries()[-1].messages[-1]["content"]


async def summary_held(parts, fake_glm: FakeGLM, conversation: str) -> ChatService:
    """A service whose window of one turn is full, its first summary call held."""
    service = service_of(*parts, window=1)
    fake_glm.push_summary(Fault("hold"))
    await ask(service, Question(conversation, "一"))
    await ask(service, Question(conversation, "二"))
    await fake_glm.wait_holding()
    return service


async def test_one_conversation_has_one_summary_call_at_a_time(parts, fake_glm: FakeGLM):
    service = await summary_held(parts, fake_glm, "private:2")
    # Answers go on while the summary is held, and ask for another fold, which waits.
    await asyncio.wait_for(ask(service, Question("private:2", "三")), 5)
    await asyncio.wait_for(ask(service, Question("private:2", "四")), 5)
    await asyncio.sleep(0.1)
    assert len(fake_glm.summaries()) == 1
    fake_glm.release()
    await folds_done(service)
    assert len(fake_glm.summaries()) == 2
    summary = await parts[0].summary("private:2")
    assert summary is not None and summary.turns == 4


async def test_a_reset_during_a_summary_call_keeps_the_conversation_empty(parts, fake_glm: FakeGLM):
    service = await summary_held(parts, fake_glm, "private:3")
    await service.reset("private:3")
    fake_glm.release()
    await folds_done(service)
    assert await parts[0].summary("private:3") is None


async def test_the_background_heard_before_a_question_goes_with_it_once(parts, fake_glm: FakeGLM):
    service = service_of(*parts)
    reading = service.reading
    assert reading is not None
    for text in ("明天下雨吗", "下吧"):
        seq = reading.arrive("group:1")
        reading.hear("group:1", Heard(seq, BOB, text, "", time.time()))
    quote = Quote("明天下雨吗", BOB)
    await ask(
        service, Question("group:1", "你觉得呢", ALICE, heard_until=reading.next_seq(), quote=quote)
    )
    first = fake_glm.completions()[-1].messages[-1]["content"]
    assert first == (
        f"{BACKGROUND_HEADER}\nBob(12): 明天下雨吗\nBob(12): 下吧\n"
        "【引用】Bob(12): 明天下雨吗\nAlice(11): 你觉得呢"
    )
    await ask(service, Question("group:1", "还有呢", ALICE, heard_until=reading.next_seq()))
    second = fake_glm.completions()[-1].messages
    assert second[-1]["content"] == "Alice(11): 还有呢"
    assert second[-3]["content"] == first  # the first turn keeps what went with it
    await reading.close()


async def test_a_remark_speaks_to_new_background_only(parts, fake_glm: FakeGLM):
    service = service_of(*parts)
    reading = service.reading
    assert reading is not None

    async def sent(_completion) -> bool:
        return True

    assert await service.remark("group:1", reading.next_seq(), sent) is None  # nothing heard
    assert fake_glm.completions() == []
    seq = reading.arrive("group:1")
    reading.hear("group:1", Heard(seq, BOB, "有人在吗", "", time.time()))
    assert await service.remark("group:1", seq + 1, sent) is not None
    request = fake_glm.completions()[-1].messages
    assert request[-1]["content"] == f"{BACKGROUND_HEADER}\nBob(12): 有人在吗\n{CHIME_CUE}"
    assert request[0]["content"].startswith("你是助手\n\n这是一个QQ群聊")
    [turn] = await parts[0].recent("group:1", 5)
    assert (turn.question, turn.speaker) == (CHIME_CUE, None)
    assert await service.remark("group:1", reading.next_seq(), sent) is None  # spoken to
    await reading.close()


def test_the_question_is_never_cut_and_the_rest_goes_newest_first():
    history = [Turn(f"旧问题{i}" * 10, "旧回答" * 10, ALICE) for i in range(10)]
    background = [Heard(i, BOB, f"群消息{i}" * 20, "", 0) for i in range(10)]
    question = "很长的问题" * 200  # 1000 tokens: over the budget alone
    tight = build_prompt(
        "系统",
        history,
        question,
        ALICE,
        background=background,
        summary="摘要" * 10,
        max_turns=20,
        token_budget=500,
    )
    assert tight.messages[-1]["content"] == f"Alice(11): {question}"
    assert len(tight.messages) == 2 and tight.context == ""

    roomy = build_prompt(
        "系统",
        history,
        "问",
        ALICE,
        background=background,
        summary="摘要" * 10,
        max_turns=20,
        token_budget=700,
    )
    assert SUMMARY_HEADER in roomy.messages[0]["content"]  # the summary comes first
    assert roomy.context.startswith(BACKGROUND_HEADER)
    assert roomy.context.endswith("群消息9" * 20)  # the newest background line is kept
    assert 0 < roomy.background < 10 and roomy.turns == 0
    assert prompt_tokens(roomy.messages) <= 700


async def test_the_prompt_at_turn_500_with_busy_background_fits_the_budget(
    parts, fake_glm: FakeGLM
):
    store, client = parts
    budget = 2000
    service = service_of(store, client, window=20, budget=budget, summaries=False)
    busy = "\n".join(f"Bob(12): 第{i}条很长的群消息" + "啊" * 80 for i in range(20))
    for index in range(500):
        await store.append_turn(
            "group:9", Turn(f"第{index}个问题" * 5, "回答" * 60, ALICE, busy), heard=None
        )
    last = (await store.numbered("group:9", 1))[0]
    limit = summary_chars(budget)
    await store.save_summary(
        "group:9", Summary("要" * limit, last.seq - 20, last.created_at, 480), None
    )
    service.summarizer = Summarizer(
        store, client, model="glm-4-flash", mode="sync", window=20, context_tokens=budget
    )
    reading = service.reading
    assert reading is not None
    for _ in range(30):
        seq = reading.arrive("group:9")
        reading.hear("group:9", Heard(seq, BOB, "刷屏" * 150, "", time.time()))
    question = "第501个问题：" + "请" * 600
    await ask(service, Question("group:9", question, ALICE, heard_until=reading.next_seq()))
    sent = fake_glm.completions()[-1].messages
    assert prompt_tokens(sent) <= budget
    assert sent[-1]["content"].endswith(f"Alice(11): {question}")
    await reading.close()


async def test_turns_too_long_to_summarise_are_halved_then_let_go_and_memory_goes_on(
    parts, fake_glm: FakeGLM
):
    store, _ = parts
    service = service_of(*parts)
    too_long = Fault("error", status=400, code="1261", message="prompt too long")
    fake_glm.push_summary(too_long, too_long)  # the batch of three, then its oldest alone
    for index in range(WINDOW + 1):
        await ask(service, Question("private:4", f"很长的一轮{index}"))
        await folds_done(service)
    let_go = await store.summary("private:4")
    assert let_go is not None and let_go.text == "" and let_go.turns == 1
    fake_glm.push_summary(too_long)  # next time the batch is halved once, and goes on
    for index in range(2):
        await ask(service, Question("private:4", f"之后{index}"))
        await folds_done(service)
    summary = await store.summary("private:4")
    assert summary is not None and summary.turns == 5
    assert "很长的一轮1" in summary.text and "很长的一轮0" not in summary.text


async def test_a_backlog_is_folded_from_its_newest_part_in_a_few_calls(parts, fake_glm: FakeGLM):
    store, _ = parts
    for index in range(200):  # kept before summaries were on
        await store.append_turn("private:6", Turn(f"旧{index}", "答"))
    service = service_of(*parts)
    await ask(service, Question("private:6", "升级之后"))
    await folds_done(service)
    assert len(fake_glm.summaries()) <= 2
    summary = await store.summary("private:6")
    assert summary is not None and "旧197" in summary.text and "旧100" not in summary.text


async def test_listen_off_forgets_the_summaries_written_from_the_background(parts, fake_glm):
    store, _ = parts
    service = service_of(*parts)
    for conversation in ("group:5", "group:5:11"):
        for index in range(WINDOW + 1):
            await ask(service, Question(conversation, f"轮{index}", scope="group:5"))
            await folds_done(service)
        assert await store.summary(conversation) is not None
    await service.update_options("group:5", listen=False)
    assert await store.summary("group:5") is None
    assert await store.summary("group:5:11") is None
    assert len(await store.recent("group:5", 99)) == WINDOW + 1  # the turns stay


async def test_listen_off_during_a_summary_call_keeps_nothing_of_it(parts, fake_glm: FakeGLM):
    service = service_of(*parts, window=1)
    fake_glm.push_summary(Fault("hold"))
    for text in ("一", "二"):
        await ask(service, Question("group:7", text, ALICE))
    await fake_glm.wait_holding()
    await service.update_options("group:7", listen=False)
    fake_glm.release()
    await folds_done(service)
    assert await parts[0].summary("group:7") is None


def test_only_the_newest_past_turns_carry_their_background():
    busy = f"{BACKGROUND_HEADER}\nBob(12): " + "聊" * 100
    history = [Turn(f"问{i}", f"答{i}", ALICE, busy) for i in range(10)]
    prompt = build_prompt("系统", history, "新问题", ALICE, max_turns=20, token_budget=6000)
    users = [m["content"] for m in prompt.messages if m["role"] == "user"][:-1]
    assert prompt.turns == 10
    assert [u.startswith(BACKGROUND_HEADER) for u in users] == [False] * 7 + [True] * 3


async def test_a_remark_qq_refuses_is_not_kept_and_its_background_goes_with_the_next_question(
    parts, fake_glm: FakeGLM
):
    service = service_of(*parts)
    reading = service.reading
    assert reading is not None

    async def refused(_completion) -> bool:
        return False

    seq = reading.arrive("group:8")
    reading.hear("group:8", Heard(seq, BOB, "有人吗", "", time.time()))
    assert await service.remark("group:8", seq + 1, refused) is not None
    assert await parts[0].recent("group:8", 5) == []
    await ask(service, Question("group:8", "刚才谁说话了", ALICE, heard_until=reading.next_seq()))
    assert "Bob(12): 有人吗" in fake_glm.completions()[-1].messages[-1]["content"]
    await reading.close()
