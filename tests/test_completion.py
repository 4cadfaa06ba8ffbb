import json

import pytest

from plugins.nonebot_plugin_glm_chat.glm.completion import (
    Completion,
    StreamAssembler,
    completion_from_json,
    split_reasoning,
)
from plugins.nonebot_plugin_glm_chat.glm.errors import (
    ContentFilterError,
    RateLimitError,
    UpstreamError,
)
from plugins.nonebot_plugin_glm_chat.glm.sse import iter_sse_data
from plugins.nonebot_plugin_glm_chat.qq.render import answer_text


async def chunks(*items: bytes):
    for item in items:
        yield item


async def collect(*items: bytes) -> list[str]:
    return [data async for data in iter_sse_data(chunks(*items))]


async def test_sse_events_follow_the_spec():
    stream = (
        b": keep-alive\n\n"
        b'data: {"a": 1}\n\n'
        b"event: message\r\ndata:first\r\ndata: second\r\n\r\n"
        b"id: 7\ndata: [DONE]"
    )
    expected = ['{"a": 1}', "first\nsecond", "[DONE]"]
    assert await collect(stream) == expected
    # However the bytes are cut into chunks, even inside a character or a CRLF.
    for size in (1, 2, 3, 7):
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert await collect(*pieces) == expected
    frame = "data: 你好\n\n".encode()
    assert await collect(frame[:8], frame[8:]) == ["你好"]


def chunk(content: str = "", finish: str | None = None, **extra) -> str:
    choice = {"index": 0, "delta": {"content": content}}
    if finish:
        choice["finish_reason"] = finish
    return json.dumps({"choices": [choice], **extra}, ensure_ascii=False)


def test_stream_assembles_content_and_usage():
    assembler = StreamAssembler()
    for payload in [
        chunk("你好"),
        chunk("，世界"),
        chunk("", "stop", usage={"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}),
        "[DONE]",
    ]:
        assembler.feed(payload)
    result = assembler.result()
    assert result.content == "你好，世界"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (5, 9)
    assert assembler.done


def test_error_frame_mid_stream_raises_its_typed_error():
    assembler = StreamAssembler()
    assembler.feed(chunk("半句"))
    with pytest.raises(RateLimitError) as caught:
        assembler.feed(json.dumps({"error": {"code": "1305", "message": "overloaded"}}))
    assert caught.value.code == "1305" and caught.value.retryable


@pytest.mark.parametrize(
    ("reason", "error"), [("sensitive", ContentFilterError), ("network_error", UpstreamError)]
)
def test_bad_finish_reasons_raise(reason, error):
    assembler = StreamAssembler()
    assembler.feed(chunk("部分内容"))
    with pytest.raises(error):
        assembler.feed(chunk("", reason))


def test_stream_cut_short_is_a_retryable_upstream_error():
    assembler = StreamAssembler()
    assembler.feed(chunk("没说完"))
    with pytest.raises(UpstreamError) as caught:
        assembler.result()
    assert caught.value.retryable


def test_frame_that_is_not_json_is_an_upstream_error():
    with pytest.raises(UpstreamError):
        StreamAssembler().feed("<html>502</html>")


def test_reasoning_content_never_reaches_the_answer():
    assembler = StreamAssembler()
    assembler.feed(json.dumps({"choices": [{"delta": {"reasoning_content": "让我想想"}}]}))
    assembler.feed(chunk("答案", "stop"))
    result = assembler.result()
    assert result.content == "答案" and result.reasoning == "让我想想"


def answer(model: str, content: str) -> Completion:
    """The completion of a sync response whose whole text is ``content``."""
    message = {"finish_reason": "stop", "message": {"content": content}}
    return completion_from_json({"model": model, "choices": [message]})


def streamed(model: str, *pieces: str) -> Completion:
    assembler = StreamAssembler()
    for piece in pieces:
        assembler.feed(chunk(piece, model=model))
    assembler.feed(chunk("", "stop", model=model))
    return assembler.result()


@pytest.mark.parametrize(
    "content",
    [
        "<think> 标签不是标准 HTML，浏览器会把它当作未知元素。",
        "HTML 里的 <think> 标签是什么意思？它不是标准标签，</think> 也不是。",
        "推理模型的输出以 </think> 结束思考部分。",
    ],
)
def test_an_answer_that_mentions_the_tag_reaches_qq_whole(content):
    assert answer_text(answer("glm-4-flash", content)) == content
    half = len(content) // 2
    assert answer_text(streamed("glm-4-flash", content[:half], content[half:])) == content


@pytest.mark.parametrize("model", ["glm-z1-air", "GLM-Z1-Flash"])
def test_glm_z1_leading_reasoning_block_is_removed(model):
    result = streamed(model, "<thi", "nk>\n先算 2+2。\n</th", "ink>\n\n结果是 4，<think> 是标签。")
    assert result.content == "结果是 4，<think> 是标签。"
    assert result.reasoning == "先算 2+2。"
    assert answer(model, "<think>先算</think>结果是 4").content == "结果是 4"


def test_glm_z1_reasoning_without_its_opening_tag_is_removed():
    result = answer("glm-z1-flash", "先算 2+2。\n</think>\n结果是 4")
    assert (result.content, result.reasoning) == ("结果是 4", "先算 2+2。")


def test_reasoning_that_never_ends_leaves_no_answer():
    with pytest.raises(UpstreamError, match="empty answer"):
        answer("glm-z1-air", "<think>想到一半被截断")


def test_split_reasoning_only_takes_a_leading_block():
    assert split_reasoning("  <think>先算一下</think>\n结果是 4") == ("结果是 4", "先算一下")
    assert split_reasoning("<think>想到一半被截断") == ("", "想到一半被截断")
    assert split_reasoning("<think>想</think>答", "glm-4-flash") == ("答", "想")
    assert split_reasoning("<think> 是标签", "glm-4-flash") == ("<think> 是标签", "")
    assert split_reasoning("先算一下</think>结果是 4") == ("先算一下</think>结果是 4", "")
    assert split_reasoning("先算一下</think>结果是 4", "glm-z1-air") == ("结果是 4", "先算一下")
    late = "前言 <think>x</think> 后"
    assert split_reasoning(late, "glm-z1-air") == (late, "")


def test_sync_body_parsing():
    body = {
        "model": "glm-4-flash",
        "choices": [{"finish_reason": "stop", "message": {"content": "好的"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    result = completion_from_json(body)
    assert result.content == "好的" and result.usage.total_tokens == 5

    with pytest.raises(UpstreamError, match="no choices"):
        completion_from_json({"choices": []})
    with pytest.raises(UpstreamError, match="empty answer"):
        completion_from_json({"choices": [{"finish_reason": "stop", "message": {"content": ""}}]})
    with pytest.raises(ContentFilterError):
        completion_from_json({"choices": [{"finish_reason": "sensitive", "message": {}}]})
