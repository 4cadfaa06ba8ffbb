"""LeanTransport against scripted HTTP servers on 127.0.0.1, on asyncio's loop and uvloop."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from plugins.nonebot_plugin_glm_chat.glm.transport import LeanTransport, _Connection

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    """Run a test's coroutine on the event loop the bot may have."""
    return asyncio.run if request.param == "asyncio" else uvloop.run


class Server:
    """A loopback server that reads each request head (and body) and answers with ``handle``."""

    def __init__(self, handle: Callable[[Server, bytes], Awaitable[bytes | None]]) -> None:
        self._handle = handle
        self.connections = 0
        self.requests: list[bytes] = []
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.reader, self.writer = reader, writer
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.lower().split(b"\r\n")
                        if line.startswith(b"content-length:")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = await self._handle(self, request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def ok(server: Server, request: bytes) -> bytes:
    return OK


def first_stalls(seconds: float) -> Callable[[Server, bytes], Awaitable[bytes]]:
    """A handler that answers the first request only after ``seconds``, the others at once."""

    async def handle(server: Server, request: bytes) -> bytes:
        if len(server.requests) == 1:
            await asyncio.sleep(seconds)
        return OK

    return handle


def client(timeout: float | httpx.Timeout = 5, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanTransport(**kwargs), timeout=timeout)


def test_requests_reuse_one_connection_and_carry_headers_and_body(run) -> None:
    async def main() -> None:
        server = Server(ok)
        async with server as url, client() as http:
            for number in range(3):
                response = await http.post(url + "/v4/chat?x=1", json={"n": number})
                assert (response.status_code, response.text) == (200, "ok")
            assert server.connections == 1
            first = server.requests[0]
            assert first.startswith(b"POST /v4/chat?x=1 HTTP/1.1\r\n")
            assert b"\r\nhost: 127.0.0.1:" in first.lower()
            assert first.endswith(b'{"n":0}')

    run(main())


def test_a_streamed_request_body_goes_chunked(run) -> None:
    async def chunked(server: Server, request: bytes) -> bytes:
        assert server.reader is not None
        server.requests[-1] += await server.reader.readuntil(b"0\r\n\r\n")
        return OK

    async def parts():
        yield b"hello "
        yield b""
        yield b"world"

    async def main() -> None:
        server = Server(chunked)
        async with server as url, client() as http:
            assert (await http.post(url, content=parts())).text == "ok"
            assert (await http.post(url, content=parts())).text == "ok"  # and the next one
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert body == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
        assert server.connections == 1

    run(main())


def test_concurrent_requests_open_a_connection_each_and_keep_a_few(run) -> None:
    async def slow(server: Server, request: bytes) -> bytes:
        await asyncio.sleep(0.05)
        return OK

    async def main() -> None:
        server = Server(slow)
        async with server as url, client(max_keepalive=2) as http:
            await asyncio.gather(*(http.get(url) for _ in range(4)))
            assert server.connections == 4
            await asyncio.gather(*(http.get(url) for _ in range(4)))
            assert server.connections == 6  # two were kept, two more opened

    run(main())


def test_a_chunked_stream_arrives_piece_by_piece(run) -> None:
    async def main() -> None:
        go_on = asyncio.Event()

        async def sse(server: Server, request: bytes) -> None:
            assert server.writer is not None
            server.writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                b"content-type: text/event-stream\r\n\r\n"
            )
            server.writer.write(b"d\r\ndata: first\n\n\r\n")
            await go_on.wait()
            server.writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
            return None

        async with (
            Server(sse) as url,
            client() as http,
            http.stream("POST", url, content=b"{}") as response,
        ):
            pieces = response.aiter_bytes()
            assert await pieces.__anext__() == b"data: first\n\n"  # before the rest is sent
            go_on.set()
            assert b"".join([piece async for piece in pieces]) == b"data: second\n\n"

    run(main())


def trickling(pieces: int, gap: float, stop_after: int | None = None) -> Handler:
    """A chunked SSE answer of ``pieces`` events, ``gap`` seconds apart; with ``stop_after``
    the server falls silent after that many (and keeps the connection open)."""

    async def sse(server: Server, request: bytes) -> None:
        assert server.writer is not None
        server.writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
            b"content-type: text/event-stream\r\n\r\n"
        )
        for number in range(pieces):
            if number == stop_after:
                await asyncio.sleep(10)
            event = b"data: %d\n\n" % number
            server.writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await server.writer.drain()
            await asyncio.sleep(gap)
        server.writer.write(b"0\r\n\r\n")
        return None

    return sse


async def gathered(transport: LeanTransport, url: str, read_timeout: float = 5) -> bytes:
    """A POST's body, read with ``LeanBody.gathered``, as one piece (it is one, or this fails)."""
    timeouts = httpx.Timeout(read_timeout).as_dict()
    request = httpx.Request("POST", url, content=b"{}", extensions={"timeout": timeouts})
    response = await transport.handle_async_request(request)
    try:
        [body] = [piece async for piece in response.stream.gathered()]
        return body
    finally:
        await response.aclose()


def test_a_gathered_stream_comes_in_one_piece_when_it_ends(run, monkeypatch) -> None:
    """Six events 50 ms apart: the reader is woken once for the body, not for each."""
    wakes = 0
    wait = _Connection._wait

    async def counted(self: _Connection, *args: Any) -> None:
        nonlocal wakes
        wakes += 1
        await wait(self, *args)

    monkeypatch.setattr(_Connection, "_wait", counted)

    async def main() -> None:
        transport = LeanTransport()
        async with Server(trickling(6, 0.05)) as url:
            started = asyncio.get_running_loop().time()
            body = await gathered(transport, url)
            ended = asyncio.get_running_loop().time()
        await transport.aclose()
        assert body == b"".join(b"data: %d\n\n" % n for n in range(6))
        assert ended - started >= 0.25
        assert wakes <= 3  # the head, the body (and the head's first piece, if apart)

    run(main())


def test_a_gathered_stream_times_out_on_silence_not_on_its_length(run) -> None:
    """The read timeout (0.25 s) is the longest silence: an answer trickling for 0.5 s is
    read whole; one that falls silent mid-way times out."""

    async def main() -> None:
        transport = LeanTransport()
        async with Server(trickling(10, 0.05)) as url:
            assert (await gathered(transport, url, 0.25)).count(b"data: ") == 10
        async with Server(trickling(10, 0.05, stop_after=3)) as url:
            with pytest.raises(httpx.ReadTimeout):
                await gathered(transport, url, 0.25)
        await transport.aclose()

    run(main())


def test_a_body_without_length_ends_when_the_server_closes(run) -> None:
    async def close_after(server: Server, request: bytes) -> None:
        assert server.writer is not None
        server.writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        return None

    async def main() -> None:
        server = Server(close_after)
        async with server as url, client() as http:
            assert (await http.get(url)).text == "all of it"
            assert (await http.get(url)).text == "all of it"
            assert server.connections == 2

    run(main())


def test_an_idle_connection_the_server_closed_is_not_reused(run) -> None:
    async def once(server: Server, request: bytes) -> None:
        assert server.writer is not None
        server.writer.write(OK)  # keep-alive by HTTP/1.1's default, then closed all the same
        return None

    async def main() -> None:
        server = Server(once)
        async with server as url, client() as http:
            assert (await http.get(url)).text == "ok"
            await asyncio.sleep(0.05)
            assert (await http.get(url)).text == "ok"
            assert server.connections == 2

    run(main())


def test_a_connection_idle_too_long_is_not_reused(run) -> None:
    async def main() -> None:
        server = Server(ok)
        async with server as url, client(keepalive_expiry=0.2) as http:
            await http.get(url)
            await http.get(url)
            assert server.connections == 1  # reused while fresh
            await asyncio.sleep(0.3)
            assert (await http.get(url)).text == "ok"
            assert server.connections == 2

    run(main())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "without sending a response"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", "before the response ended"),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed response"),
    ],
)
def test_a_broken_response_is_a_protocol_error_and_the_next_request_works(
    run, answer: bytes, message: str
) -> None:
    async def main() -> None:
        async def broken_then_ok(server: Server, request: bytes) -> None:
            assert server.writer is not None
            server.writer.write(answer if server.connections == 1 else OK)
            return None

        async with Server(broken_then_ok) as url, client() as http:
            with pytest.raises(httpx.RemoteProtocolError, match=message):
                await http.get(url)
            assert (await http.get(url)).text == "ok"

    run(main())


def test_silence_is_a_read_timeout_and_the_connection_is_dropped(run) -> None:
    async def main() -> None:
        server = Server(first_stalls(2))
        async with server as url, client(timeout=httpx.Timeout(0.2)) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(url)
            assert (await http.get(url)).text == "ok"
            assert server.connections == 2

    run(main())


def test_a_refused_connection_is_a_connect_error(run) -> None:
    async def main() -> None:
        async with Server(ok) as url:
            pass  # closed: nobody listens there now
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(url)

    run(main())


def test_a_response_left_half_read_closes_its_connection(run) -> None:
    async def big(server: Server, request: bytes) -> bytes:
        body = b"x" * 3_000_000
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def main() -> None:
        server = Server(big)
        async with server as url, client() as http:
            async with http.stream("GET", url) as response:
                await response.aiter_bytes().__anext__()  # then walk away
            whole = await http.get(url)  # read in full, under flow control
            assert len(whole.content) == 3_000_000
            assert server.connections == 2

    run(main())


def test_a_big_body_read_gathered_comes_a_megabyte_or_so_at_a_time(run) -> None:
    async def big(server: Server, request: bytes) -> bytes:
        body = bytes(range(256)) * 12_000  # 3 MB
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def main() -> None:
        transport = LeanTransport()
        async with Server(big) as url:
            request = httpx.Request("GET", url, extensions={"timeout": httpx.Timeout(5).as_dict()})
            response = await transport.handle_async_request(request)
            pieces = [piece async for piece in response.stream.gathered()]
            await response.aclose()
        await transport.aclose()
        assert b"".join(pieces) == bytes(range(256)) * 12_000
        assert len(pieces) >= 2  # the reader drained it past the high-water mark

    run(main())


def test_cancelling_a_request_mid_answer_frees_it(run) -> None:
    async def main() -> None:
        async with Server(first_stalls(5)) as url, client() as http:
            task = asyncio.ensure_future(http.get(url))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await asyncio.wait_for(http.get(url), 2)).text == "ok"

    run(main())


def test_https_with_the_servers_certificate(run, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        server = await asyncio.start_server(
            lambda reader, writer: Server(ok)._serve(reader, writer), "127.0.0.1", 0, ssl=serving
        )
        port = server.sockets[0].getsockname()[1]
        try:
            async with client(verify=trusting) as http:
                assert (await http.get(f"https://localhost:{port}/")).text == "ok"
            async with client() as http:  # the system's CAs do not know this certificate
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(f"https://localhost:{port}/")
        finally:
            server.close()

    run(main())


def test_a_proxy_in_the_environment_leaves_it_to_httpx(monkeypatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert LeanTransport.suits("https://open.bigmodel.cn/api/paas/v4")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not LeanTransport.suits("https://open.bigmodel.cn/api/paas/v4")
    monkeypatch.setenv("NO_PROXY", "open.bigmodel.cn")
    assert LeanTransport.suits("https://open.bigmodel.cn/api/paas/v4")
