"""Server-sent events: the ``data`` payload of each event in a stream of lines."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def iter_sse_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """Yield the data of each event; multi-line data is joined with newlines.

    Follows the SSE rules that matter here: an event ends at a blank line, ``:`` starts a
    comment, one space after the colon is dropped, and fields other than ``data`` are ignored.
    """
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
