"""``LeanTransport``: httpx's HTTP/1.1 on asyncio protocols, responses parsed by httptools.

httpx's default transport (httpcore on anyio streams) costs this bot about as much CPU per
streamed answer as the rest of the answer does: task groups, locks and a pool scan per request,
and several layers of awaits per SSE frame. This transport keeps httpx's requests, responses,
timeouts, decoding and errors, and replaces what is under them: a few keep-alive connections
per origin, each an ``asyncio.Protocol`` whose bytes go straight into the C parser.

Kept to what the GLM API needs: HTTP/1.1 (TLS when the URL says https), request bodies that are
bytes or chunked streams, responses with a length, chunked or ended by the connection closing.
No proxies: ``LeanTransport.suits()`` says when the environment asks for one and httpx's own
transport has to be used instead.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools
import httpx

# Body bytes held unread before the socket stops being read (a download the caller is slow on).
HIGH_WATER = 1 << 20
# Seconds an idle connection is kept for the next request (httpx's own default): a NAT or a
# firewall on the way may forget a quiet connection without telling either end.
KEEPALIVE_EXPIRY = 5.0
Origin = tuple[str, str, int]


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections, at most ``max_keepalive`` idle ones per origin, each
    for ``keepalive_expiry`` seconds."""

    def __init__(
        self,
        *,
        max_keepalive: int = 5,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._ssl = verify  # made on the first https connection, as httpx makes it
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._open: set[_Connection] = set()

    @staticmethod
    def suits(url: str) -> bool:
        """False when the environment routes ``url`` through a proxy (httpx's transport then)."""
        host = httpx.URL(url).host
        proxies = urllib.request.getproxies()
        wanted = {"http", "https", "all"} & proxies.keys()
        return not wanted or bool(urllib.request.proxy_bypass(host))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        origin = (request.url.scheme, request.url.host, request.url.port or _default_port(request))
        connection = self._idle_connection(origin) or await self._connect(origin, timeouts)
        try:
            await connection.send(request, timeouts.get("write"))
            await connection.wait_for_head(timeouts.get("read"))
        except BaseException:
            self._drop(connection)
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=LeanBody(self, connection, origin, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason},
        )

    async def aclose(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        """The connection to ``origin`` idle the shortest time, if one is still fit to use;
        those closed or idle too long are closed and dropped."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        stale = time.monotonic() - self._expiry
        while idle and idle[0].idle_since < stale:  # the oldest first: all of them, or some
            self._drop(idle.popleft())
        while idle:
            connection = idle.pop()
            if connection.open:
                return connection
            self._drop(connection)
        return None

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            tls = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                ),
                timeouts.get("connect"),
            )
        except asyncio.TimeoutError as error:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port}") from error
        except (OSError, ssl.SSLError) as error:
            raise httpx.ConnectError(f"{host}:{port}: {error}") from error
        self._open.add(connection)
        return connection

    def _release(self, connection: _Connection, origin: Origin) -> None:
        """Take a connection back after its response: kept for the next request, or closed."""
        idle = self._idle.setdefault(origin, deque())
        if connection.reusable and len(idle) < self._max_keepalive:
            connection.reset()
            idle.append(connection)
        else:
            self._drop(connection)


class LeanBody(httpx.AsyncByteStream):
    """A response's body as it arrives (or ``gathered``); closing it hands the connection
    back."""

    def __init__(
        self, owner: LeanTransport, connection: _Connection, origin: Origin, timeout: float | None
    ) -> None:
        self._owner, self._connection, self._origin = owner, connection, origin
        self._timeout = timeout
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces(gather=False)

    def gathered(self) -> AsyncIterator[bytes]:
        """The body in as few pieces as it allows: all of it when it ends, unless a megabyte
        comes first. For a reader that needs no piece early: a stream's events cost one
        wake-up in all instead of one each. ``timeout`` is still the longest silence."""
        return self._pieces(gather=True)

    @property
    def first_data_at(self) -> float | None:
        """When (``time.monotonic()``) the first of the body arrived."""
        return self._connection.first_data_at

    async def _pieces(self, gather: bool) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            chunk = await connection.read(self._timeout, gather=gather)
            if not chunk:
                return
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._release(self._connection, self._origin)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed as bytes arrive."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False  # reading, while the caller catches up
        self._writing_paused = False  # while the kernel's buffer is full
        self._lost: Exception | None = None
        self.reset()

    # What the parser found in the current response.
    def reset(self) -> None:
        self.idle_since = time.monotonic()  # idle from now until the next request
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._keep_alive = False
        self._complete = False
        self._framed = False  # the body has a length or is chunked (else: it ends at EOF)
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: Exception | None = None
        self._gathering = False  # the reader wants the whole body: no wake-up for each piece
        self.first_data_at: float | None = None
        self._data_at = 0.0  # when bytes last arrived (or the reader began to wait)

    @property
    def open(self) -> bool:
        transport = self._transport
        return self._lost is None and transport is not None and not transport.is_closing()

    @property
    def reusable(self) -> bool:
        """The response was read to its end and the server keeps the connection."""
        return self.open and self._complete and self._error is None and self._keep_alive

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self._data_at = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {error}"))
            self.close()
            return
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        if self._enough_gathered():
            self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the socket; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_done and not self._complete and not self._framed and exc is None:
            self._complete = True  # a body without a length ends where the connection does
        self._lost = exc or ConnectionResetError("the connection closed")
        if not self._complete:
            self._fail(
                httpx.RemoteProtocolError("server disconnected before the response ended")
                if self._head_done or self.status
                else httpx.RemoteProtocolError("server disconnected without sending a response")
            )
        self._wake()

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:  # an interim response (100 Continue): wait for the real one
            self.headers, self.reason, self._framed = [], b"", False
            return
        self._head_done = True
        self._keep_alive = self._parser.should_keep_alive()  # unknown once the body is parsed

    def on_body(self, body: bytes) -> None:
        if self.first_data_at is None:
            self.first_data_at = self._data_at
        self._chunks.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self._head_done:
            self._complete = True

    # the request's side
    async def send(self, request: httpx.Request, timeout: float | None) -> None:
        if not self.open or self._transport is None:
            raise httpx.RemoteProtocolError("the connection closed")
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
        head += [b"%s: %s\r\n" % pair for pair in request.headers.raw]
        head.append(b"\r\n")
        if request.headers.get("transfer-encoding", "").lower() != "chunked":
            # One write, one packet: on loopback the sender pays for the receiver's wake-up too.
            self._transport.write(b"".join([*head, *[part async for part in request.stream]]))
        else:
            self._transport.write(b"".join(head))
            async for part in request.stream:  # type: ignore[union-attr]
                if part:
                    self._transport.write(b"%x\r\n%s\r\n" % (len(part), part))
            self._transport.write(b"0\r\n\r\n")
        while self._writing_paused:
            await self._wait(timeout, httpx.WriteTimeout)

    async def wait_for_head(self, timeout: float | None) -> None:
        while not self._head_done:
            await self._wait(timeout, httpx.ReadTimeout)

    async def read(self, timeout: float | None, *, gather: bool = False) -> bytes:
        """What arrived of the body since the last read (several HTTP chunks at once, such as a
        stream's events that came together); b"" at its end. ``gather``: wait for the rest
        of the body, or for a megabyte of it."""
        self._gathering = gather
        try:
            while not self._chunks or not self._enough_gathered():
                if self._complete:
                    return b""
                await self._wait(timeout, httpx.ReadTimeout)
        finally:
            self._gathering = False
        chunk = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= HIGH_WATER // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    async def _wait(self, timeout: float | None, timed_out: type[httpx.TimeoutException]) -> None:
        """Until bytes arrive or writing may go on; raises what went wrong, or ``timed_out``
        after ``timeout`` seconds."""
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._data_at = time.monotonic()
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._expire, timeout)
        try:
            await waiter
        except asyncio.TimeoutError:
            self.close()
            raise timed_out(f"nothing from the server in {timeout:g}s") from None
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._error is not None:
            raise self._error

    def _enough_gathered(self) -> bool:
        """Whether a gathering reader has what it waits for (the body's end, or more than the
        high-water mark of it); a reader that does not gather always has."""
        return not self._gathering or self._complete or self._buffered > HIGH_WATER

    def _expire(self, timeout: float) -> None:
        """Fail the wait after ``timeout`` seconds without bytes (a wait that gathers is not
        woken by bytes: they only move ``_data_at``)."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        silent = time.monotonic() - self._data_at
        if silent < timeout:
            self._timer = asyncio.get_running_loop().call_later(
                timeout - silent, self._expire, timeout
            )
        else:
            waiter.set_exception(asyncio.TimeoutError())

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error


def _default_port(request: httpx.Request) -> int:
    return 443 if request.url.scheme == "https" else 80
