import json

import pytest

from plugins.glm_chat.glm.completion import StreamAssembler, completion_from_json, split_reasoning
from plugins.glm_chat.glm.errors import (
    ContentFilterError,
    RateLimitError,
    UpstreamError,
)
from plugins.glm_chat.glm.sse import iter_sse_data


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


def test_reasoning_never_reaches_the_answer():
    assembler = StreamAssembler()
    assembler.feed(json.dumps({"choices": [{"delta": {"reasoning_content": "让我想想"}}]}))
    assembler.feed(chunk("答案", "stop"))
    result = assembler.result()
    assert result.content == "答案" and result.reasoning == "让我想想"

    assert split_reasoning("<think>先算一下</think>\n结果是 4") == ("结果是 4", "先算一下")
    assert split_reasoning("先算一下</think>结果是 4") == ("结果是 4", "先算一下")
    assert split_reasoning("<think>想到一半被截断") == ("", "想到一半被截断")


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
