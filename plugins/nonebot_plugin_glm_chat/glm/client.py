"""``GLMClient``: chat completions over plain httpx, with auth, retries and a concurrency cap."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import httpx

from .auth import Credential, KeyPool
from .completion import Completion, StreamAssembler, Usage, completion_from_json
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    GLMError,
    NotConfiguredError,
    QuotaExceededError,
    TokenExpiredError,
    UpstreamError,
    error_for,
    parse_error_body,
)
from .slots import Slots

if TYPE_CHECKING:
    from ..shared.cap import SharedCap
from .sse import iter_sse_data
from .transport import LeanBody, LeanTransport

CallMode = Literal["stream", "sync", "async"]
Message = dict[str, Any]
TextSink = Callable[[str], None]  # takes each piece of an answer as it streams
T = TypeVar("T")
USER_AGENT = "glm-chat"

# How long a key rests after the platform refused it.
AUTH_REST_SECONDS = 600.0
QUOTA_REST_SECONDS = 3600.0
# Seconds between polls of an async task: the first wait, its growth, its ceiling.
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.5, 1.5, 3.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: half the step fixed, half random."""

    base: float = 0.5
    cap: float = 8.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        step = min(self.cap, self.base * 2 ** (retry - 1))
        wait = step / 2 + random.uniform(0, step / 2)
        return max(wait, min(retry_after or 0.0, self.cap))


@dataclass
class CallRecord:
    """What one ``complete()`` did, for the log and the statistics; never holds the key."""

    conversation: str
    model: str
    mode: str
    purpose: str = "answer"  # or "summary", "remark"
    key: str = ""
    attempts: int = 0
    status: int | None = None
    code: str | None = None
    error: str | None = None
    first_token_s: float | None = None
    total_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    rested_keys: list[str] = field(default_factory=list)  # labels put to rest by this call
    started_at: float = field(default_factory=time.time)  # wall clock, for the console
    started: float = field(default_factory=time.monotonic)  # for durations and deadlines

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, error: BaseException) -> None:
        """Note why the call ended without a completion: ``cancelled``, or the error's kind."""
        cancelled = isinstance(error, asyncio.CancelledError)
        self.error = "cancelled" if cancelled else type(error).__name__
        if isinstance(error, GLMError):
            self.status, self.code = error.status, error.code


class GLMClient:
    """Keep-alive connections speaking ``{base}/chat/completions`` (see ``_send``).

    Every failure surfaces as a ``GLMError``; callers never see httpx exceptions.
    """

    def __init__(
        self,
        keys: KeyPool | None,
        *,
        base_url: str,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 5,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        shared: SharedCap | None = None,
    ) -> None:
        self.keys = keys
        self.shared = shared  # the cap per key across processes (GLM_REDIS_URL), if any
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff or Backoff()
        self._on_call = on_call
        self._slots = Slots(max_concurrency)
        if shared is not None:  # without Redis, keep to this process's share of the limit
            shared.on_alone = self._slots.resize
        # Each path's URL, parsed once (parsing anew took about a tenth of a request's CPU).
        self._url = functools.lru_cache(maxsize=32)(httpx.URL(base_url.rstrip("/") + "/").join)
        self._timeouts = httpx.Timeout(timeout, connect=min(connect_timeout, timeout)).as_dict()
        # Requests go straight to the transport (ours, or a test's). Only when the environment
        # sends the API through a proxy does an ``httpx.AsyncClient`` route them, with its own
        # transports; then no more connections than requests in flight, as httpcore checks
        # every pooled one whenever a request starts or ends.
        self._transport = transport or _lean_transport(base_url, max_concurrency)
        self._proxied = (
            None
            if self._transport is not None
            else httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=max_concurrency, max_keepalive_connections=max_concurrency
                )
            )
        )

    async def aclose(self) -> None:
        if self._proxied is not None:
            await self._proxied.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        bearer: str,
        *,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """``{method} {base}/{path}``; the body is read unless ``stream``.

        The request is built here, not by ``httpx.AsyncClient``: merging its defaults, cookies
        and URLs and wrapping the response cost about a third of a call's CPU.
        httpx's exceptions, timeouts and response decoding are unchanged.
        """
        request = httpx.Request(
            method,
            self._url(path),
            headers={"User-Agent": USER_AGENT, "Authorization": f"Bearer {bearer}"},
            json=json,
            extensions={"timeout": self._timeouts},
        )
        if self._proxied is not None:
            return await self._proxied.send(request, stream=stream)
        assert self._transport is not None
        response = await self._transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def complete(
        self,
        messages: list[Message],
        *,
        model: str,
        mode: CallMode = "stream",
        options: dict[str, Any] | None = None,
        conversation: str = "",
        on_text: TextSink | None = None,
        purpose: str = "answer",
        can_wait: bool = False,
    ) -> Completion:
        """Ask for one completion, retrying what is worth retrying within a deadline.

        ``on_text`` receives the answer's text as it streams (stream mode only; a retried
        stream starts over, so a reader should take the returned completion as final).
        ``can_wait``: the call yields its place to answers (see ``Slots``).
        """
        record = CallRecord(conversation, model, mode, purpose)
        body = {"model": model, "messages": messages, **(options or {})}

        async def work() -> Completion:
            completion = await self._complete_with_retries(body, mode, record, on_text, can_wait)
            record.usage = completion.usage
            return completion

        return await self._recorded(record, work)

    async def post_json(
        self,
        path: str,
        body: dict[str, Any],
        *,
        model: str,
        purpose: str,
        conversation: str = "",
    ) -> dict[str, Any]:
        """``POST {base}/{path}`` with ``body``, under the same keys, cap and retries as a
        completion; the call is logged and counted with ``purpose`` (``draw``, ``search``)."""
        record = CallRecord(conversation, model, "sync", purpose)

        async def attempt(credential: Credential) -> dict[str, Any]:
            async with self._placed(credential, can_wait=False):
                with _transport_errors(self._timeout):
                    response = await self._send("POST", path, credential.bearer(), json=body)
                return _json_from_response(response)

        async def work() -> dict[str, Any]:
            if self.keys is None:
                raise NotConfiguredError("no API key configured")
            deadline = record.started + self._timeout * 2
            return await self._with_retries(attempt, record, deadline)

        return await self._recorded(record, work)

    async def _recorded(self, record: CallRecord, work: Callable[[], Awaitable[T]]) -> T:
        """Run one call's ``work``; whatever the outcome, ``record`` is finished and reported."""
        try:
            result = await work()
        except BaseException as error:  # a cancelled call is a failed one too; never swallowed
            record.fail(error)
            raise
        else:
            record.status = 200
            return result
        finally:
            record.total_s = time.monotonic() - record.started
            if self._on_call is not None:
                self._on_call(record)

    @asynccontextmanager
    async def _placed(self, credential: Credential, *, can_wait: bool) -> AsyncIterator[None]:
        """A place under this process's cap and, with Redis, under the key's shared cap."""
        async with self._slots.take(can_wait=can_wait):
            lease = await self._take_shared(credential)
            try:
                yield
            finally:
                await self._free_shared(lease)

    async def _complete_with_retries(
        self,
        body: dict[str, Any],
        mode: CallMode,
        record: CallRecord,
        on_text: TextSink | None,
        can_wait: bool,
    ) -> Completion:
        if self.keys is None:
            raise NotConfiguredError("no API key configured")
        deadline = record.started + self._timeout * 2
        if mode == "async":
            return await self._async_task(body, record, deadline, can_wait)

        async def call(credential: Credential) -> Completion:
            async with self._placed(credential, can_wait=can_wait):
                return await self._call_once(mode, body, credential.bearer(), record, on_text)

        return await self._with_retries(call, record, deadline)

    async def _with_retries(
        self, attempt: Callable[[Credential], Awaitable[T]], record: CallRecord, deadline: float
    ) -> T:
        """Run ``attempt`` with the next key until it succeeds, rotating keys and backing off.

        Each run is one request that may bill: ``record.attempts`` counts them.
        """
        assert self.keys is not None
        retries = 0
        reminted = False
        while True:
            record.attempts += 1
            credential = self.keys.pick()
            record.key = credential.label
            try:
                return await attempt(credential)
            except TokenExpiredError:
                if reminted:
                    raise
                credential.invalidate()
                reminted = True
            except (AuthenticationError, QuotaExceededError) as error:
                self._rest(credential, error, record)
                if not self._another_key_ready():
                    raise
            except GLMError as error:
                retries += 1
                if not error.retryable or retries > self._max_retries:
                    raise
                delay = self._backoff.delay(retries, error.retry_after)
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)

    def _rest(self, credential: Credential, error: GLMError, record: CallRecord) -> None:
        """Take a key the platform refused out of rotation for a while."""
        assert self.keys is not None
        auth = isinstance(error, AuthenticationError)
        reason = error.code or (f"HTTP {error.status}" if error.status else "rejected")
        self.keys.rest(credential, AUTH_REST_SECONDS if auth else QUOTA_REST_SECONDS, reason)
        record.rested_keys.append(f"{credential.label}:{reason}")

    def _another_key_ready(self) -> bool:
        assert self.keys is not None
        return len(self.keys.resting()) < len(self.keys)

    async def _call_once(
        self,
        mode: CallMode,
        body: dict[str, Any],
        bearer: str,
        record: CallRecord,
        on_text: TextSink | None = None,
    ) -> Completion:
        with _transport_errors(self._timeout):
            if mode == "stream":
                return await self._stream(body, bearer, record, on_text)
            response = await self._send(
                "POST", "chat/completions", bearer, json={**body, "stream": False}
            )
        return _completion_from_response(response)

    async def _stream(
        self,
        body: dict[str, Any],
        bearer: str,
        record: CallRecord,
        on_text: TextSink | None,
    ) -> Completion:
        response = await self._send(
            "POST", "chat/completions", bearer, json={**body, "stream": True}, stream=True
        )
        try:
            if response.status_code >= 400 or "event-stream" not in response.headers.get(
                "content-type", ""
            ):
                await response.aread()
                return _completion_from_response(response)
            assembler = StreamAssembler()
            # Read to the end of the body, past [DONE]: leaving the loop early leaves two async
            # generators for the event loop to finalise, which cost ~1 ms of CPU per call.
            # Nobody reads the answer as it streams: its events are taken all at once.
            chunks = _body_chunks(response, gather=on_text is None)
            async for payload in iter_sse_data(chunks):
                if assembler.done:
                    continue
                text = assembler.feed(payload)
                if text and record.first_token_s is None:
                    record.first_token_s = _first_data_at(response) - record.started
                if text and on_text is not None:
                    on_text(text)
            return assembler.result()
        finally:
            await response.aclose()

    async def _async_task(
        self, body: dict[str, Any], record: CallRecord, deadline: float, can_wait: bool
    ) -> Completion:
        """Create one billed task, then poll that same task until it ends or the deadline.

        Only a creation that failed is retried; the task holds a slot until its result.
        """
        async with self._slots.take(can_wait=can_wait):
            held: list[str | None] = []  # the shared place of the task that was created

            async def create(credential: Credential) -> AsyncTask:
                lease = await self._take_shared(credential)
                try:
                    created = await self._create_task(body, credential)
                except BaseException:
                    await self._free_shared(lease)
                    raise
                held.append(lease)
                return created

            task = await self._with_retries(create, record, deadline)
            try:
                return await asyncio.wait_for(self._poll(task), deadline - time.monotonic())
            except asyncio.TimeoutError as exc:
                raise APITimeoutError(
                    f"async task {task.id} not done in {self._timeout * 2:g}s"
                ) from exc
            finally:
                for lease in held:
                    await self._free_shared(lease)

    async def _take_shared(self, credential: Credential) -> str | None:
        """A place under the key's cap across processes (None: no Redis, or it is gone)."""
        return await self.shared.acquire(credential.label) if self.shared else None

    async def _free_shared(self, lease: str | None) -> None:
        if self.shared is not None:
            await self.shared.release(lease)

    async def _create_task(self, body: dict[str, Any], credential: Credential) -> AsyncTask:
        """``POST async/chat/completions``: the request that bills."""
        with _transport_errors(self._timeout):
            try:
                response = await self._send(
                    "POST", "async/chat/completions", credential.bearer(), json=body
                )
            except httpx.ReadTimeout as exc:
                # The request arrived and may have created a billed task: another could bill twice.
                raise APITimeoutError(
                    f"no task id within {self._timeout:g}s", retryable=False
                ) from exc
        task_id = _json_from_response(response).get("id")
        if not task_id:
            raise UpstreamError("the async task was created without an id")
        return AsyncTask(str(task_id), credential)

    async def _poll(self, task: AsyncTask) -> Completion:
        """Poll ``task`` until it succeeds or fails; a poll that failed retryably is just redone.

        Polls use the key that created the task; an expired JWT is minted anew once.
        """
        interval = wait = POLL_FIRST
        failures = 0
        reminted = False
        while True:
            await asyncio.sleep(wait)
            try:
                result = await self._poll_once(task)
            except TokenExpiredError:
                if reminted:
                    raise
                task.credential.invalidate()
                reminted, wait = True, 0.0
            except GLMError as error:
                if not error.retryable:
                    raise
                failures += 1
                wait = self._backoff.delay(failures, error.retry_after)
            else:
                if (completion := _task_outcome(task, result)) is not None:
                    return completion
                failures = 0
                interval = wait = min(interval * POLL_GROWTH, POLL_MAX)

    async def _poll_once(self, task: AsyncTask) -> dict[str, Any]:
        """``GET async-result/{id}``: the task as it stands."""
        with _transport_errors(self._timeout):
            response = await self._send("GET", f"async-result/{task.id}", task.credential.bearer())
        return _json_from_response(response)


@dataclass(frozen=True)
class AsyncTask:
    """A created async task and the key that created it (and polls it)."""

    id: str
    credential: Credential


def _task_outcome(task: AsyncTask, result: dict[str, Any]) -> Completion | None:
    """The completion of a finished task, ``None`` while it runs; raises if it failed."""
    status = str(result.get("task_status") or "").upper()
    if status == "SUCCESS":
        return completion_from_json(result)
    if status in {"FAIL", "FAILED"}:
        raise UpstreamError(f"async task {task.id} failed")
    return None


def _lean_transport(base_url: str, connections: int) -> httpx.AsyncBaseTransport | None:
    """``LeanTransport`` unless the environment sends ``base_url`` through a proxy."""
    return LeanTransport(max_keepalive=connections) if LeanTransport.suits(base_url) else None


@contextmanager
def _transport_errors(timeout: float) -> Iterator[None]:
    """Turn httpx's timeouts and connection failures into ``GLMError``s."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"no answer within {timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"connection failed: {type(exc).__name__}") from exc


def _body_chunks(response: httpx.Response, *, gather: bool) -> AsyncIterable[bytes]:
    """The body as it arrives: straight from the transport unless it must be decompressed
    (requests ask for none), past the two generators per chunk of ``aiter_bytes``.
    ``gather``: in as few pieces as the transport can (see ``LeanBody.gathered``)."""
    if response.headers.get("content-encoding", "identity") != "identity":
        return response.aiter_bytes()
    body = response.stream
    if gather and isinstance(body, LeanBody):
        return body.gathered()
    return cast(AsyncIterable[bytes], body)


def _first_data_at(response: httpx.Response) -> float:
    """When the body's first bytes arrived, if the transport says (a gathered body is read
    only once it has ended); else now."""
    body = response.stream
    arrived = body.first_data_at if isinstance(body, LeanBody) else None
    return arrived if arrived is not None else time.monotonic()


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        code, message = parse_error_body(response.content)
        error = error_for(response.status_code, code, message)
        retry_after = response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            error.retry_after = float(retry_after)
        raise error


def _json_from_response(response: httpx.Response) -> dict[str, Any]:
    _raise_for_status(response)
    try:
        data = response.json()
    except ValueError as exc:
        raise UpstreamError("the response is not JSON", status=response.status_code) from exc
    if not isinstance(data, dict):
        raise UpstreamError("the response is not a JSON object", status=response.status_code)
    if isinstance(data.get("error"), dict):
        code, message = parse_error_body(data)
        raise error_for(response.status_code, code, message)
    return data


def _completion_from_response(response: httpx.Response) -> Completion:
    return completion_from_json(_json_from_response(response), response.status_code)
