"""GLMClient against the fake server over real HTTP on 127.0.0.1."""

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest

from plugins.nonebot_plugin_glm_chat.glm.auth import KeyPool
from plugins.nonebot_plugin_glm_chat.glm.client import Backoff, CallRecord, GLMClient
from plugins.nonebot_plugin_glm_chat.glm.completion import Completion
from plugins.nonebot_plugin_glm_chat.glm.errors import (
    _USER_MESSAGES,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    GLMError,
    MessageTooLongError,
    ModelNotFoundError,
    NotConfiguredError,
    PromptTooLongError,
    QuotaExceededError,
    RateLimitError,
    UpstreamError,
    error_for,
    user_message,
)
from tests.support.fake_glm import FakeGLM, Fault, served

KEY = "clientid.clientsecret"
MESSAGES = [{"role": "user", "content": "你好"}]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeGLM, str]]:
    fake = FakeGLM(keys={"clientid": "clientsecret", "other": "othersecret"}, raw_keys={"raw-key"})
    with served(fake) as base_url:
        yield fake, base_url


@pytest.fixture
def fake(server) -> FakeGLM:
    return server[0].reset()


def make_client(base_url: str, keys=(KEY,), mode="jwt", **kwargs) -> GLMClient:
    kwargs.setdefault("backoff", Backoff(base=0.01, cap=0.05))
    return GLMClient(KeyPool(list(keys), mode), base_url=base_url, **kwargs)


@pytest.fixture
async def client(server) -> AsyncIterator[GLMClient]:
    client = make_client(server[1], timeout=5)
    yield client
    await client.aclose()


@pytest.mark.parametrize("mode", ["stream", "sync", "async"])
async def test_each_call_mode_gets_the_answer(client, fake, mode):
    completion = await client.complete(MESSAGES, model="glm-4-flash", mode=mode)
    assert completion.content == "回声#1：你好"
    assert completion.usage.total_tokens > 0
    sent = fake.completions()[-1]
    assert sent.body["model"] == "glm-4-flash" and sent.messages == MESSAGES
    if mode != "async":
        assert sent.body["stream"] is (mode == "stream")
    assert sent.token_claims["api_key"] == "clientid"


@pytest.mark.parametrize("mode", ["stream", "sync", "async"])
async def test_each_call_mode_goes_through_a_proxy_from_the_environment(
    server, fake, monkeypatch, mode
):
    """Where the environment names a proxy, httpx routes the calls (the fake serves as the
    proxy here: the API's own host does not resolve)."""
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxy = httpx.URL(server[1])
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}:{proxy.port}")
    client = make_client("http://glm-api.invalid/api/paas/v4", timeout=5)
    try:
        completion = await client.complete(MESSAGES, model="glm-4-flash", mode=mode)
    finally:
        await client.aclose()
    assert completion.content == "回声#1：你好"
    assert fake.completions()[-1].headers["host"] == "glm-api.invalid"


async def test_token_is_reused_across_calls(client, fake):
    for _ in range(3):
        await client.complete(MESSAGES, model="m", mode="sync")
    tokens = {r.headers["authorization"] for r in fake.completions()}
    assert len(tokens) == 1 and client.keys.tokens_minted == 1


@pytest.mark.parametrize("mode", ["stream", "sync"])
async def test_calls_reuse_one_connection(client, fake, mode):
    for _ in range(3):
        await client.complete(MESSAGES, model="m", mode=mode)
    assert len({r.client_port for r in fake.completions()}) == 1


async def test_raw_key_mode(server, fake):
    client = make_client(server[1], keys=["raw-key"], mode="key")
    try:
        await client.complete(MESSAGES, model="m", mode="sync")
    finally:
        await client.aclose()
    assert fake.completions()[-1].headers["authorization"] == "Bearer raw-key"


@pytest.mark.parametrize(
    ("fault", "error", "code", "requests"),
    [
        (Fault("error", 401, "1002", "bad token"), AuthenticationError, "1002", 1),
        (Fault("error", 400, "1301", "blocked"), ContentFilterError, "1301", 1),
        (Fault("error", 429, "1113", "no balance"), QuotaExceededError, "1113", 1),
        (Fault("error", 400, "1211", "no such model"), ModelNotFoundError, "1211", 1),
        (Fault("error", 400, "1261", "too long"), PromptTooLongError, "1261", 1),
        (Fault("error", 400, "1214", "bad param"), BadRequestError, "1214", 1),
        (Fault("no_choices"), UpstreamError, None, 1),
        (Fault("text", 200, body="<html>ok?</html>"), UpstreamError, None, 1),
    ],
)
async def test_failures_that_are_not_retried(client, fake, fault, error, code, requests):
    fake.push(fault)
    with pytest.raises(error) as caught:
        await client.complete(MESSAGES, model="m", mode="sync")
    assert caught.value.code == code
    assert len(fake.completions()) == requests
    assert user_message(caught.value)  # every failure has its sentence


@pytest.mark.parametrize("mode", ["stream", "sync"])
async def test_retryable_failures_are_retried_then_succeed(client, fake, mode):
    fake.push(
        Fault("error", 429, "1302", "concurrency"),
        Fault("text", 502, body="<html>bad gateway</html>"),
        Fault("error", 503, "1305", "overloaded"),
    )
    completion = await client.complete(MESSAGES, model="m", mode=mode)
    assert completion.content.startswith("回声")
    assert len(fake.completions()) == 4


async def test_retries_stop_at_the_limit(server, fake):
    client = make_client(server[1], max_retries=1)
    fake.push(*[Fault("error", 429, "1303", "frequency")] * 3)
    try:
        with pytest.raises(RateLimitError) as caught:
            await client.complete(MESSAGES, model="m", mode="sync")
    finally:
        await client.aclose()
    assert caught.value.status == 429 and caught.value.code == "1303"
    assert len(fake.completions()) == 2


async def test_expired_token_is_minted_anew_once(client, fake):
    await client.complete(MESSAGES, model="m", mode="sync")
    fake.push(Fault("error", 401, "1003", "token expired"))
    await client.complete(MESSAGES, model="m", mode="sync")
    first, expired, fresh = (r.headers["authorization"] for r in fake.completions())
    assert first == expired != fresh
    assert client.keys.tokens_minted == 2


async def test_error_frame_mid_stream(client, fake):
    fake.push(Fault("sse_error", code="1301", message="blocked mid-answer"))
    with pytest.raises(ContentFilterError):
        await client.complete(MESSAGES, model="m", mode="stream")


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def http_chunk(data: str) -> bytes:
    raw = data.encode()
    return b"%x\r\n%s\r\n" % (len(raw), raw)


def content_frame(text: str) -> bytes:
    return http_chunk(f'data: {{"choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}\n\n')


STREAM_END = (
    http_chunk('data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    + http_chunk("data: [DONE]\n\n")
    + b"0\r\n\r\n"
)


async def open_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: str
) -> None:
    """Read a request's head and start its SSE answer with the frame ``first``."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(SSE_HEAD + content_frame(first))


@asynccontextmanager
async def raw_client(serve: Serve) -> AsyncIterator[tuple[GLMClient, list[CallRecord]]]:
    """A client of a loopback server that answers with ``serve``, and its call records."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    records: list[CallRecord] = []
    client = make_client(f"http://127.0.0.1:{port}", timeout=5, on_call=records.append)
    try:
        yield client, records
    finally:
        await client.aclose()
        server.close()


async def complete_from(serve: Serve) -> tuple[Completion, list[CallRecord]]:
    """One completion from ``raw_client(serve)``, and its call records."""
    async with raw_client(serve) as (client, records):
        return await client.complete(MESSAGES, model="m"), records


async def test_a_stream_the_platform_drops_mid_answer_is_asked_again_whole():
    """The connection closes after the first frame, mid-body: a connection error, retried;
    the answer is the whole one of the second attempt."""
    attempts = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        await open_stream(reader, writer, "半句")
        if attempts > 1:
            writer.write(content_frame("话说完了") + STREAM_END)
        await writer.drain()
        writer.close()

    completion, records = await complete_from(serve)
    assert completion.content == "半句话说完了"
    assert (attempts, records[0].attempts, records[0].ok) == (2, 2, True)


async def test_an_answer_nobody_streams_is_read_whole_and_timed_from_its_first_bytes():
    """The answer's events come 0.3 s apart; with nobody reading them as they come the answer
    is taken whole, and its time to the first token is still that of the first event."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await open_stream(reader, writer, "慢")
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(content_frame("慢来") + STREAM_END)
        await writer.drain()

    completion, records = await complete_from(serve)
    assert completion.content == "慢慢来"
    assert records[0].first_token_s < 0.2 and records[0].total_s >= 0.3


async def test_an_answer_cancelled_while_it_is_gathered_frees_its_connection():
    """Shutdown (or a reset) cancels an answer whose stream stalled mid-body: the call ends
    as cancelled, and the next one gets a whole answer on a connection of its own."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await open_stream(reader, writer, "一半")
        await writer.drain()
        if connections == 1:
            await asyncio.sleep(30)  # stalls mid-body
        writer.write(content_frame("完整") + STREAM_END)
        await writer.drain()

    async with raw_client(serve) as (client, records):
        stalled = asyncio.ensure_future(client.complete(MESSAGES, model="m"))
        await asyncio.sleep(0.2)
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled
        completion = await asyncio.wait_for(client.complete(MESSAGES, model="m"), 3)
    assert [record.error for record in records] == ["cancelled", None]
    assert completion.content == "一半完整" and connections == 2


async def test_a_stream_compressed_anyway_is_decompressed():
    """Requests ask for no compression; a server that compresses its stream all the same is
    read through httpx's decoders."""
    frames = (
        'data: {"choices":[{"index":0,"delta":{"content":"压缩的"}}]}\n\n'
        'data: {"choices":[{"index":0,"delta":{"content":"回答"},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )

    def compressing(request: httpx.Request) -> httpx.Response:
        assert "accept-encoding" not in request.headers
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=gzip.compress(frames.encode()))

    client = make_client("http://glm.test/api/paas/v4", transport=httpx.MockTransport(compressing))
    try:
        completion = await client.complete(MESSAGES, model="m")
    finally:
        await client.aclose()
    assert completion.content == "压缩的回答"


async def test_sensitive_finish_in_stream(client, fake):
    fake.push(Fault("finish", finish_reason="sensitive"))
    with pytest.raises(ContentFilterError):
        await client.complete(MESSAGES, model="m", mode="stream")


async def test_slow_upstream_times_out(server, fake):
    client = make_client(server[1], timeout=0.3, max_retries=0)
    fake.push(Fault("hang", delay=1.5))
    try:
        with pytest.raises(APITimeoutError):
            await client.complete(MESSAGES, model="m", mode="sync")
    finally:
        await client.aclose()


async def test_unreachable_endpoint_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}/api/paas/v4", max_retries=1)
    try:
        with pytest.raises(APIConnectionError):
            await client.complete(MESSAGES, model="m", mode="stream")
    finally:
        await client.aclose()


async def test_async_task_failure(client, fake):
    fake.push(Fault("text", body="FAILED"))
    with pytest.raises(UpstreamError, match="failed"):
        await client.complete(MESSAGES, model="m", mode="async")


async def test_slow_async_task_is_polled_past_the_timeout(server, fake):
    records: list[CallRecord] = []
    client = make_client(server[1], timeout=1.0, on_call=records.append)
    fake.latency = 1.05  # done after GLM_TIMEOUT, before twice that
    try:
        completion = await client.complete(MESSAGES, model="m", mode="async")
    finally:
        await client.aclose()
    assert completion.content == "回声#1：你好"
    assert len(fake.creations()) == 1 and fake.polls >= 2
    assert records[0].ok and records[0].attempts == 1


async def test_async_task_never_done_times_out_after_one_creation(server, fake):
    records: list[CallRecord] = []
    client = make_client(server[1], timeout=0.5, on_call=records.append)
    fake.latency = 60.0
    try:
        with pytest.raises(APITimeoutError):
            await client.complete(MESSAGES, model="m", mode="async")
    finally:
        await client.aclose()
    assert len(fake.creations()) == 1 and fake.polls >= 1
    assert records[0].error == "APITimeoutError" and records[0].attempts == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault("error", 500),
        Fault("text", 502, body="<html>bad gateway</html>"),
        Fault("error", 429, "1302", "concurrency"),
    ],
)
async def test_failed_poll_is_polled_again(client, fake, fault):
    fake.push_poll(fault)
    completion = await client.complete(MESSAGES, model="m", mode="async")
    assert completion.content == "回声#1：你好"
    assert len(fake.creations()) == 1 and fake.polls == 2


async def test_expired_token_while_polling_is_minted_anew(client, fake):
    fake.push_poll(Fault("error", 401, "1003", "token expired"))
    await client.complete(MESSAGES, model="m", mode="async")
    assert client.keys.tokens_minted == 2 and len(fake.creations()) == 1


async def test_poll_that_times_out_is_polled_again(server, fake):
    client = make_client(server[1], timeout=1.0)
    fake.push_poll(Fault("hang", delay=1.3))
    try:
        completion = await client.complete(MESSAGES, model="m", mode="async")
    finally:
        await client.aclose()
    assert completion.content == "回声#1：你好"
    assert len(fake.creations()) == 1 and fake.polls == 2


async def test_poll_refused_for_good_ends_the_call_without_a_new_task(client, fake):
    fake.push_poll(Fault("error", 401, "1002", "bad token"))
    with pytest.raises(AuthenticationError):
        await client.complete(MESSAGES, model="m", mode="async")
    assert len(fake.creations()) == 1 and not client.keys.resting()


async def test_failed_creation_is_retried(server, fake):
    records: list[CallRecord] = []
    client = make_client(server[1], timeout=5, on_call=records.append)
    fake.push(Fault("error", 429, "1302", "concurrency"))
    try:
        await client.complete(MESSAGES, model="m", mode="async")
    finally:
        await client.aclose()
    assert len(fake.creations()) == 2 and fake.polls == 1
    assert records[0].ok and records[0].attempts == 2


async def test_creation_without_an_answer_is_not_retried(server, fake):
    client = make_client(server[1], timeout=0.3)
    fake.push(Fault("hang", delay=0.6))  # the task may exist: another creation could bill twice
    try:
        with pytest.raises(APITimeoutError):
            await client.complete(MESSAGES, model="m", mode="async")
    finally:
        await client.aclose()
    assert len(fake.creations()) == 1


async def test_unexpected_error_is_recorded_as_a_failure():
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug")

    records: list[CallRecord] = []
    client = make_client(
        "http://glm.test/api/paas/v4", transport=httpx.MockTransport(broken), on_call=records.append
    )
    try:
        with pytest.raises(RuntimeError, match="a bug"):
            await client.complete(MESSAGES, model="m", mode="sync")
    finally:
        await client.aclose()
    assert not records[0].ok and records[0].error == "RuntimeError"


async def test_cancelled_call_is_recorded_as_cancelled():
    reached = asyncio.Event()

    async def never_answers(request: httpx.Request) -> httpx.Response:
        reached.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    records: list[CallRecord] = []
    client = make_client(
        "http://glm.test/api/paas/v4",
        transport=httpx.MockTransport(never_answers),
        on_call=records.append,
    )
    call = asyncio.create_task(client.complete(MESSAGES, model="m", mode="stream"))
    try:
        await reached.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await client.aclose()
    assert not records[0].ok and records[0].error == "cancelled"


def test_too_long_message_and_too_long_conversation_get_their_own_advice():
    message = user_message(MessageTooLongError("x", code="1261"))
    conversation = user_message(PromptTooLongError("x", code="1261"))
    assert "消息" in message and "/glm reset" not in message
    assert "/glm reset" in conversation


def test_every_user_message_is_reachable():
    classes = [cls for cls, _ in _USER_MESSAGES]
    for index, cls in enumerate(classes):
        assert not issubclass(cls, tuple(classes[:index])), f"{cls.__name__} is shadowed"
    assert all(issubclass(cls, GLMError) for cls in classes)


async def test_no_key_means_not_configured(server):
    client = GLMClient(None, base_url=server[1])
    try:
        with pytest.raises(NotConfiguredError):
            await client.complete(MESSAGES, model="m")
    finally:
        await client.aclose()


async def test_concurrency_cap_holds(server, fake):
    fake.latency = 0.1
    client = make_client(server[1], max_concurrency=2)
    try:
        await asyncio.gather(*(client.complete(MESSAGES, model="m") for _ in range(6)))
    finally:
        await client.aclose()
    assert fake.peak_in_flight == 2


async def test_rejected_key_rests_and_the_next_carries_on(server, fake):
    records: list[CallRecord] = []
    client = make_client(server[1], keys=[KEY, "other.othersecret"], on_call=records.append)
    fake.push(Fault("error", 429, "1113", "no balance"))
    try:
        await client.complete(MESSAGES, model="m", mode="sync")  # clientid fails, other answers
        await client.complete(MESSAGES, model="m", mode="sync")  # clientid rests: other again
    finally:
        await client.aclose()
    used = [r.token_claims["api_key"] for r in fake.completions()]
    assert used == ["clientid", "other", "other"]
    assert [r.label for r in client.keys.resting()] == ["clientid"]
    assert records[0].ok and records[0].attempts == 2 and records[0].key == "other"


def test_call_record_never_holds_the_key(server):
    record = CallRecord("group:1", "m", "sync", key="clientid")
    assert "clientsecret" not in repr(record)


@pytest.mark.parametrize(
    ("status", "code", "error", "retryable"),
    [
        (500, None, UpstreamError, True),
        (429, None, RateLimitError, True),
        (429, "1312", RateLimitError, True),
        (200, "1234", UpstreamError, True),
        (200, "1230", UpstreamError, False),
        (400, "1220", BadRequestError, False),
        (400, "1304", QuotaExceededError, False),
        (400, "1308", QuotaExceededError, False),
        (401, None, AuthenticationError, False),
        (404, None, BadRequestError, False),
    ],
)
def test_error_mapping(status, code, error, retryable):
    mapped = error_for(status, code, "x")
    assert type(mapped) is error
    assert mapped.retryable is retryable and mapped.status == status


def test_token_verifies_with_the_secret_only(server):
    token = KeyPool([KEY], "jwt").pick().bearer()
    assert jwt.decode(token, "clientsecret", algorithms=["HS256"], options={"verify_exp": False})
