"""Server-sent events: the ``data`` payload of each event in a stream of bytes."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def iter_sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """Yield the data of each event; multi-line data is joined with newlines.

    Reads raw byte chunks (one generator instead of httpx's three stacked line and text
    decoders: a streamed answer has a frame every few tokens). Follows the SSE rules that
    matter here: lines end in LF or CRLF, an event ends at a blank line, ``:`` starts a
    comment, one space after the colon is dropped, and fields other than ``data`` are ignored.
    UTF-8 never puts a LF byte inside a character, so splitting bytes at LF is safe.
    """
    data: list[str] = []
    pending = b""
    async for chunk in chunks:
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            if not raw or raw == b"\r":
                if data:
                    yield "\n".join(data)
                    data = []
            elif raw.startswith(b"data:"):
                value = raw[5:].rstrip(b"\r")
                data.append((value[1:] if value.startswith(b" ") else value).decode())
    if pending.startswith(b"data:"):
        value = pending[5:].rstrip(b"\r")
        data.append((value[1:] if value.startswith(b" ") else value).decode())
    if data:
        yield "\n".join(data)
