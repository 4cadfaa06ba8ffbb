"""A fake Zhipu BigModel server for tests and benchmarks: real HTTP on 127.0.0.1.

It speaks the platform's wire format: ``POST /api/paas/v4/chat/completions`` (JSON or SSE,
``tool_calls`` included), ``POST async/chat/completions`` + ``GET async-result/{id}``,
``POST images/generations`` (a URL on this server, which serves the PNG), ``POST web_search``,
errors as ``{"error": {"code", "message"}}``, and checks JWTs strictly (HS256,
``sign_type: SIGN``, millisecond ``exp``/``timestamp``). Tests script faults with
``FakeGLM.push(Fault(...))``; ``Fault("tool_calls", body=calls(...))`` makes the model call
tools (only in a request that offers tools, as a real model can call no others).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BASE_PATH = "/api/paas/v4"
# Test secrets are short, like the platform's own; PyJWT's key-length advice is noise here.
warnings.filterwarnings("ignore", message="The HMAC key is .* below the minimum recommended")


@dataclass
class Fault:
    """What the server does with one request instead of answering normally.

    kind: ``error`` (``status`` + ``code``), ``text`` (the exact body ``body``), ``sse_error``
    (stream some text, then an error frame), ``finish`` (stream ends with ``finish_reason``),
    ``no_choices`` (200 JSON without choices), ``hang`` (answer after ``delay`` seconds),
    ``reply`` (answer with ``body`` as the model's text), ``hold`` (answer, with ``body`` if
    given, once the test calls ``FakeGLM.release()``), ``tool_calls`` (call the tools listed
    in ``body``, see ``calls``).
    """

    kind: str
    status: int = 200
    code: str = ""
    message: str = "fault injected"
    body: str = ""
    delay: float = 0.0
    finish_reason: str = "stop"


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    token_claims: dict[str, Any] | None = None
    client_port: int = 0  # the same port twice: the client reused its connection

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])


def is_summary(body: dict[str, Any]) -> bool:
    """Whether the request asks for a conversation's summary (glm-chat's long memory)."""
    last = (body.get("messages") or [{}])[-1].get("content")
    return isinstance(last, str) and last.startswith("【已有摘要】")


def fold_reply(body: dict[str, Any]) -> str:
    """A summary as a model without judgment would write one: the summary so far and every
    line the members said, the oldest lines dropped to stay within the length asked for."""
    ask = body["messages"][-1]["content"]
    previous = re.search(r"【已有摘要】\n(.*?)\n\n【新的对话】", ask, re.S)
    talk = re.search(r"【新的对话】\n(.*?)\n\n请把新的对话", ask, re.S)
    limit = re.search(r"不超过 (\d+) 字", ask)
    assert previous and talk and limit, ask
    lines = [] if previous[1] == "（还没有）" else previous[1].splitlines()
    lines += [line for line in talk[1].splitlines() if re.match(r"(?!助手|【)\S.*?: ", line)]
    while lines and len("\n".join(lines)) > int(limit[1]):
        lines.pop(0)
    return "\n".join(lines)


def default_reply(body: dict[str, Any]) -> str:
    """The model's answer when no fault is scripted: an echo that names the turn count (for a
    summary request, ``fold_reply``)."""
    if is_summary(body):
        return fold_reply(body)
    messages = body.get("messages", [])
    last = messages[-1]["content"] if messages else ""
    if isinstance(last, list):
        last = " ".join(p.get("text", "") for p in last if isinstance(p, dict))
    return f"回声#{len(messages)}：{last}"


@dataclass
class FakeGLM:
    """The server's state: keys it accepts, behaviour knobs, what it received."""

    keys: dict[str, str] = field(default_factory=dict)  # key id -> secret (jwt auth)
    raw_keys: set[str] = field(default_factory=set)  # bearer keys accepted as-is
    latency: float = 0.0
    stream_chunk: int = 8  # characters per SSE frame
    max_in_flight: int = 0  # 0: no limit; else more are refused with 429/1302
    reply: Callable[[dict[str, Any]], str] = default_reply
    requests: list[Recorded] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)  # for answers
    summary_faults: deque[Fault] = field(default_factory=deque)  # for summary requests
    in_flight: int = 0
    peak_in_flight: int = 0
    refused_1302: int = 0
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: int = 0
    poll_faults: deque[Fault] = field(default_factory=deque)  # what the next polls get instead
    holding: int = 0  # requests waiting for release()
    image_faults: deque[Fault] = field(default_factory=deque)  # for images/generations
    image_latency: float = 0.0
    serve_images: bool = True  # False: the drawn picture's URL answers 404
    picture: bytes = b""  # what a drawn picture's URL serves (empty: a 1x1 PNG)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._released = threading.Event()

    def release(self) -> None:
        """Let every held request (``Fault("hold")``) answer, now and from now on."""
        self._released.set()

    async def wait_holding(self, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``count`` requests are held (call from the test's own event loop)."""
        deadline = time.monotonic() + timeout
        while self.holding < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.holding} of {count} requests held")
            await asyncio.sleep(0.01)

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def push_summary(self, *faults: Fault) -> None:
        """What the next summary requests get instead of a summary."""
        with self._lock:
            self.summary_faults.extend(faults)

    def _next_fault(self, body: dict[str, Any]) -> Fault | None:
        with self._lock:
            line = self.summary_faults if is_summary(body) else self.faults
            if line and line[0].kind == "tool_calls" and not offers_functions(body):
                return None  # a model offered no tools calls none; the call waits its turn
            return line.popleft() if line else None

    def push_image(self, *faults: Fault) -> None:
        """What the next images/generations requests get instead of a picture."""
        with self._lock:
            self.image_faults.extend(faults)

    def drawings(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/images/generations")]

    def searches(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/web_search")]

    def completions(self) -> list[Recorded]:
        """The chat requests received for answers (sync, stream and async creations)."""
        return [r for r in self._chat_requests() if not is_summary(r.body)]

    def summaries(self) -> list[Recorded]:
        """The summary requests received."""
        return [r for r in self._chat_requests() if is_summary(r.body)]

    def _chat_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("chat/completions")]

    def reset(self) -> FakeGLM:
        """Back to a prompt server with no limit and nothing received or scripted."""
        self.clear()
        self.latency, self.max_in_flight = 0.0, 0
        self.image_latency, self.serve_images = 0.0, True
        return self

    def clear(self) -> None:
        """Forget what was received and scripted, after requests still running have ended."""
        deadline = time.monotonic() + 5
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.summary_faults.clear()
            self.poll_faults.clear()
            self.image_faults.clear()
            self.refused_1302 = self.peak_in_flight = self.polls = 0
        self._released.clear()

    # --- auth ---------------------------------------------------------------------------------
    def check_auth(self, authorization: str) -> tuple[dict[str, Any] | None, Response | None]:
        """Zhipu's checks: a bearer JWT signed with the key's secret, or a known raw key."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, error_response(401, "1001", "Authorization header missing")
        if token in self.raw_keys:
            return None, None
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None, error_response(401, "1002", "invalid Authorization token")
        secret = self.keys.get(str(unverified.get("api_key")))
        if header.get("alg") != "HS256" or header.get("sign_type") != "SIGN" or secret is None:
            return None, error_response(401, "1002", "invalid Authorization token")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
        except jwt.PyJWTError:
            return None, error_response(401, "1002", "invalid Authorization token signature")
        now_ms = int(time.time() * 1000)
        exp, stamp = claims.get("exp"), claims.get("timestamp")
        if not (isinstance(exp, int) and isinstance(stamp, int)) or exp < 10**12:
            return None, error_response(401, "1002", "exp/timestamp must be milliseconds")
        if exp <= now_ms:
            return None, error_response(401, "1003", "token expired")
        if stamp > now_ms + 60_000:
            return None, error_response(401, "1002", "timestamp in the future")
        return claims, None

    # --- the app ------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{BASE_PATH}/chat/completions", self._chat, methods=["POST"]),
                Route(f"{BASE_PATH}/async/chat/completions", self._async_create, methods=["POST"]),
                Route(f"{BASE_PATH}/async-result/{{task_id}}", self._async_result),
                Route(f"{BASE_PATH}/images/generations", self._draw, methods=["POST"]),
                Route(f"{BASE_PATH}/web_search", self._web_search, methods=["POST"]),
                Route("/files/{name}", self._file),
            ]
        )

    async def _admit(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        """A chat request's body, checked as the platform checks it."""
        body, refusal = await self._authorised(request)
        if refusal is not None:
            return None, refusal
        assert body is not None
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return None, error_response(400, "1214", "messages must not be empty")
        for message in body["messages"]:
            if message.get("role") == "tool" and not message.get("tool_call_id"):
                return None, error_response(400, "1214", "a tool message needs tool_call_id")
            if message.get("content") in ("", None, []) and not message.get("tool_calls"):
                return None, error_response(400, "1214", "message content must not be empty")
        return body, None

    async def _authorised(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        """A JSON body from a caller with a valid key; every request is recorded."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None, error_response(400, "1214", "body is not JSON")
        claims, refusal = self.check_auth(request.headers.get("authorization", ""))
        with self._lock:
            self.requests.append(Recorded(request.url.path, body, dict(request.headers), claims))
        return (None, refusal) if refusal is not None else (body, None)

    async def _draw(self, request: Request) -> Response:
        body, refusal = await self._authorised(request)
        if refusal is not None:
            return refusal
        assert body is not None
        if not body.get("model") or not str(body.get("prompt") or "").strip():
            return error_response(400, "1214", "model and prompt are required")
        with self._lock:
            fault = self.image_faults.popleft() if self.image_faults else None
        await asyncio.sleep(fault.delay if fault is not None else self.image_latency)
        if fault is not None and fault.kind != "hang":
            return fault_response(fault)
        name = f"{uuid.uuid4().hex[:12]}.png"
        return JSONResponse(
            {"created": int(time.time()), "data": [{"url": f"{request.base_url}files/{name}"}]}
        )

    async def _file(self, request: Request) -> Response:
        if not self.serve_images:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(self.picture or PNG, media_type="image/png")

    async def _web_search(self, request: Request) -> Response:
        body, refusal = await self._authorised(request)
        if refusal is not None:
            return refusal
        assert body is not None
        query = str(body.get("search_query") or "")
        if not query:
            return error_response(400, "1214", "search_query is required")
        return JSONResponse(
            {
                "id": uuid.uuid4().hex,
                "created": int(time.time()),
                "search_result": [
                    {**result, "content": f"关于「{query}」的报道{index}"}
                    for index, result in enumerate(SEARCH_RESULTS, start=1)
                ],
            }
        )

    async def _chat(self, request: Request) -> Response:
        body, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        assert body is not None
        with self._lock:
            if self.max_in_flight and self.in_flight >= self.max_in_flight:
                self.refused_1302 += 1
                return error_response(429, "1302", "too many concurrent requests")
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        release = True
        try:
            fault = self._next_fault(body)
            if fault is not None and fault.kind == "hang":
                await asyncio.sleep(fault.delay)
            elif fault is not None and fault.kind == "hold":
                await self._hold()
            elif self.latency:
                await asyncio.sleep(self.latency)
            if fault is not None and fault.kind == "tool_calls":
                called = json.loads(fault.body)
                if body.get("stream"):
                    release = False
                    return StreamingResponse(
                        self._sse_calls(body, called), media_type="text/event-stream"
                    )
                return JSONResponse(completion_body(body, "", "tool_calls", called))
            if fault is not None and fault.kind not in (
                "hang",
                "hold",
                "reply",
                "sse_error",
                "finish",
            ):
                return fault_response(fault)
            scripted = fault is not None and fault.kind in ("reply", "hold") and fault.body
            text = fault.body if scripted else self.reply(body)
            if body.get("stream"):
                release = False
                return StreamingResponse(
                    self._sse(body, text, fault), media_type="text/event-stream"
                )
            if fault is not None and fault.kind == "finish":
                return JSONResponse(completion_body(body, text, fault.finish_reason))
            return JSONResponse(completion_body(body, text))
        finally:
            if release:
                self._release()

    async def _hold(self) -> None:
        with self._lock:
            self.holding += 1
        try:
            # release() comes from the test's thread: poll, so a held request never pins one.
            while not self._released.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self.holding -= 1

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    async def _sse(self, body: dict[str, Any], text: str, fault: Fault | None):
        # Generation ends (and the request stops counting as in flight) before the last frame.
        released = False
        try:
            chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            pieces = [
                text[i : i + self.stream_chunk] for i in range(0, len(text), self.stream_chunk)
            ]
            if fault is not None and fault.kind == "sse_error":
                pieces = pieces[: max(1, len(pieces) // 2)]
            for index, piece in enumerate(pieces):
                frame = {
                    **({"web_search": SEARCH_RESULTS} if index == 0 and searched(body) else {}),
                    "id": chunk_id,
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}}],
                }
                yield f"data: {json.dumps(frame, ensure_ascii=False)}\n\n"
                await asyncio.sleep(0)
            released = True
            self._release()
            if fault is not None and fault.kind == "sse_error":
                error = {"error": {"code": fault.code or "1234", "message": fault.message}}
                yield f"data: {json.dumps(error)}\n\n"
                return
            finish = fault.finish_reason if fault is not None else "stop"
            last = {
                "id": chunk_id,
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": finish, "delta": {"content": ""}}],
                "usage": usage_of(body, text),
            }
            yield f"data: {json.dumps(last, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            if not released:
                self._release()

    async def _sse_calls(self, body: dict[str, Any], called: list[dict[str, Any]]):
        """Tool calls as the platform streams them: a call's id and name first, its
        arguments in two pieces after (same ``index``), then ``finish_reason: tool_calls``."""
        try:
            chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            for index, call in enumerate(called):
                arguments = call["function"]["arguments"]
                half = len(arguments) // 2
                pieces = [
                    {**call, "index": index, "function": {**call["function"], "arguments": ""}},
                    {"index": index, "function": {"arguments": arguments[:half]}},
                    {"index": index, "function": {"arguments": arguments[half:]}},
                ]
                for piece in pieces:
                    frame = {
                        "id": chunk_id,
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [
                            {"index": 0, "delta": {"role": "assistant", "tool_calls": [piece]}}
                        ],
                    }
                    yield f"data: {json.dumps(frame, ensure_ascii=False)}\n\n"
                    await asyncio.sleep(0)
        finally:
            self._release()
        last = {
            "id": chunk_id,
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "tool_calls", "delta": {}}],
            "usage": usage_of(body, json.dumps(called)),
        }
        yield f"data: {json.dumps(last, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    async def _async_create(self, request: Request) -> Response:
        body, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        assert body is not None
        fault = self._next_fault(body)
        if fault is not None and fault.kind == "error":
            return fault_response(fault)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.delay)
        task_id = f"task-{uuid.uuid4().hex[:10]}"
        with self._lock:
            self.tasks[task_id] = {
                "body": body,
                "ready_at": time.monotonic() + self.latency,
                "fault": fault,
            }
        return JSONResponse(
            {
                "id": task_id,
                "model": body.get("model"),
                "task_status": "PROCESSING",
                "request_id": task_id,
            }
        )

    async def _async_result(self, request: Request) -> Response:
        _, refusal = self.check_auth(request.headers.get("authorization", ""))
        if refusal is not None:
            return refusal
        task_id = request.path_params["task_id"]
        with self._lock:
            self.polls += 1
            task = self.tasks.get(task_id)
        if task is None:
            return error_response(404, "1214", "no such task")
        poll_fault = self._next_poll_fault()
        if poll_fault is not None and poll_fault.kind == "hang":
            await asyncio.sleep(poll_fault.delay)
        elif poll_fault is not None:
            return fault_response(poll_fault)
        body, fault = task["body"], task["fault"]
        if time.monotonic() < task["ready_at"]:
            return JSONResponse(
                {"id": task_id, "task_status": "PROCESSING", "model": body["model"]}
            )
        if fault is not None and fault.kind == "text":
            return JSONResponse({"id": task_id, "task_status": fault.body or "FAIL"})
        if fault is not None and fault.kind == "tool_calls":
            done = completion_body(body, "", "tool_calls", json.loads(fault.body))
            return JSONResponse({**done, "task_status": "SUCCESS"})
        text = fault.body if fault is not None and fault.kind == "reply" else self.reply(body)
        return JSONResponse({**completion_body(body, text), "task_status": "SUCCESS"})

    def push_poll(self, *faults: Fault) -> None:
        """Script the next polls of async results (``error``, ``text``, ``hang``...)."""
        with self._lock:
            self.poll_faults.extend(faults)

    def _next_poll_fault(self) -> Fault | None:
        with self._lock:
            return self.poll_faults.popleft() if self.poll_faults else None

    def creations(self) -> list[Recorded]:
        """The async task creations received (each one a billed task, if it succeeded)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/async/chat/completions")]


SEARCH_RESULTS = [
    {
        "title": f"搜索结果{i}",
        "link": f"https://news.example/{i}",
        "media": "示例网",
        "refer": f"ref_{i}",
    }
    for i in range(1, 5)
]


def searched(body: dict[str, Any]) -> bool:
    """Whether the request enabled the web_search tool."""
    return any(
        tool.get("type") == "web_search" and tool.get("web_search", {}).get("enable")
        for tool in body.get("tools") or []
    )


def offers_functions(body: dict[str, Any]) -> bool:
    """Whether the request offers function tools."""
    return any(tool.get("type") == "function" for tool in body.get("tools") or [])


def calls(*named: tuple[str, Any]) -> str:
    """A ``Fault("tool_calls")`` body: ``(tool name, arguments)`` pairs; arguments given as a
    dict are sent as JSON text, a str as it is (it may be broken JSON)."""
    return json.dumps(
        [
            {
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments, ensure_ascii=False),
                },
            }
            for name, arguments in named
        ],
        ensure_ascii=False,
    )


def tool_results(body: dict[str, Any]) -> list[str]:
    """The tool results a request carries, oldest first."""
    return [m["content"] for m in body.get("messages", []) if m.get("role") == "tool"]


def usage_of(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(text),
        "total_tokens": prompt + len(text),
    }


def completion_body(
    body: dict[str, Any],
    text: str,
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    extra = {"web_search": SEARCH_RESULTS} if searched(body) else {}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        **extra,
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": message,
            }
        ],
        "usage": usage_of(body, text or json.dumps(tool_calls)),
    }


# The picture every drawing is: a valid 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8dfc0f01f000680027f104c1be10000000049454e44ae426082"
)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def fault_response(fault: Fault) -> Response:
    if fault.kind == "error":
        return error_response(fault.status, fault.code, fault.message)
    if fault.kind == "text":
        return Response(fault.body, status_code=fault.status, media_type="text/html")
    if fault.kind == "no_choices":
        return JSONResponse({"id": "x", "created": int(time.time()), "choices": []})
    raise ValueError(f"unknown fault kind {fault.kind!r}")


class ServerThread:
    """Runs an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    _ids = itertools.count()

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"fake-server-{next(self._ids)}",
            daemon=True,
        )

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def serve(fake: FakeGLM) -> tuple[ServerThread, str]:
    """Start ``fake``; returns the running thread and its ``GLM_BASE_URL``."""
    server = ServerThread(fake.app()).start()
    return server, f"http://127.0.0.1:{server.port}{BASE_PATH}"


@contextmanager
def served(fake: FakeGLM) -> Iterator[str]:
    """``with served(fake) as base_url``: the server runs for the block."""
    server, base_url = serve(fake)
    try:
        yield base_url
    finally:
        server.stop()
