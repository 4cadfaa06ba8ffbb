"""``GLMClient``: chat completions over plain httpx, with auth, retries and a concurrency cap."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .auth import KeyPool
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
from .sse import iter_sse_data

CallMode = Literal["stream", "sync", "async"]
Message = dict[str, Any]

# How long a key rests after the platform refused it.
AUTH_REST_SECONDS = 600.0
QUOTA_REST_SECONDS = 3600.0


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
    key: str = ""
    attempts: int = 0
    status: int | None = None
    code: str | None = None
    error: str | None = None
    first_token_s: float | None = None
    total_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    rested_keys: list[str] = field(default_factory=list)  # labels put to rest by this call

    @property
    def ok(self) -> bool:
        return self.error is None


class GLMClient:
    """One pooled ``httpx.AsyncClient`` speaking ``{base}/chat/completions``.

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
    ) -> None:
        self.keys = keys
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff or Backoff()
        self._on_call = on_call
        self._slots = asyncio.Semaphore(max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            # No more connections than requests in flight: httpcore checks every pooled
            # connection (a poll() each) whenever a request starts or ends.
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            headers={"User-Agent": "glm-chat"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(
        self,
        messages: list[Message],
        *,
        model: str,
        mode: CallMode = "stream",
        options: dict[str, Any] | None = None,
        conversation: str = "",
    ) -> Completion:
        """Ask for one completion, retrying what is worth retrying within a deadline."""
        record = CallRecord(conversation, model, mode)
        started = time.monotonic()
        try:
            completion = await self._complete_with_retries(
                {"model": model, "messages": messages, **(options or {})}, mode, record, started
            )
        except GLMError as error:
            record.error = type(error).__name__
            record.status, record.code = error.status, error.code
            raise
        else:
            record.status, record.usage = 200, completion.usage
            return completion
        finally:
            record.total_s = time.monotonic() - started
            if self._on_call is not None:
                self._on_call(record)

    async def _complete_with_retries(
        self, body: dict[str, Any], mode: CallMode, record: CallRecord, started: float
    ) -> Completion:
        if self.keys is None:
            raise NotConfiguredError("no API key configured")
        deadline = started + self._timeout * 2
        retries = 0
        reminted = False
        while True:
            record.attempts += 1
            credential = self.keys.pick()
            record.key = credential.label
            try:
                async with self._slots:
                    return await self._call_once(mode, body, credential.bearer(), record, started)
            except TokenExpiredError:
                if reminted:
                    raise
                credential.invalidate()
                reminted = True
            except (AuthenticationError, QuotaExceededError) as error:
                auth = isinstance(error, AuthenticationError)
                reason = error.code or (f"HTTP {error.status}" if error.status else "rejected")
                self.keys.rest(
                    credential, AUTH_REST_SECONDS if auth else QUOTA_REST_SECONDS, reason
                )
                record.rested_keys.append(f"{credential.label}:{reason}")
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

    def _another_key_ready(self) -> bool:
        assert self.keys is not None
        return len(self.keys.resting()) < len(self.keys)

    async def _call_once(
        self, mode: CallMode, body: dict[str, Any], bearer: str, record: CallRecord, started: float
    ) -> Completion:
        headers = {"Authorization": f"Bearer {bearer}"}
        try:
            if mode == "stream":
                return await self._stream(body, headers, record, started)
            if mode == "async":
                return await self._async_task(body, headers)
            response = await self._http.post(
                "chat/completions", json={**body, "stream": False}, headers=headers
            )
            return _completion_from_response(response)
        except httpx.TimeoutException as exc:
            raise APITimeoutError(f"no answer within {self._timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"connection failed: {type(exc).__name__}") from exc

    async def _stream(
        self, body: dict[str, Any], headers: dict[str, str], record: CallRecord, started: float
    ) -> Completion:
        request = self._http.build_request(
            "POST", "chat/completions", json={**body, "stream": True}, headers=headers
        )
        response = await self._http.send(request, stream=True)
        try:
            if response.status_code >= 400 or "event-stream" not in response.headers.get(
                "content-type", ""
            ):
                await response.aread()
                return _completion_from_response(response)
            assembler = StreamAssembler()
            # Read to the end of the body, past [DONE]: leaving the loop early leaves two async
            # generators for the event loop to finalise, which cost ~1 ms of CPU per call.
            async for payload in iter_sse_data(response.aiter_bytes()):
                if assembler.done:
                    continue
                assembler.feed(payload)
                if assembler.first_content and record.first_token_s is None:
                    record.first_token_s = time.monotonic() - started
            return assembler.result()
        finally:
            await response.aclose()

    async def _async_task(self, body: dict[str, Any], headers: dict[str, str]) -> Completion:
        created = _json_from_response(
            await self._http.post("async/chat/completions", json=body, headers=headers)
        )
        task_id = created.get("id")
        if not task_id:
            raise UpstreamError("the async task was created without an id")
        give_up = time.monotonic() + self._timeout
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 3.0)
            result = _json_from_response(
                await self._http.get(f"async-result/{task_id}", headers=headers)
            )
            status = str(result.get("task_status") or "").upper()
            if status == "SUCCESS":
                return completion_from_json(result)
            if status in {"FAIL", "FAILED"}:
                raise UpstreamError(f"async task {task_id} failed")
            if time.monotonic() + delay > give_up:
                raise APITimeoutError(f"async task {task_id} not done in {self._timeout:g}s")


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
