"""Drawing with CogView: ``POST {base}/images/generations``, then the picture's bytes.

The platform answers with a URL on its own file host. The bot downloads the picture and hands
QQ the bytes, so the image arrives even where the QQ client cannot reach that host (a client in
a container, a host blocked on its network); only when the bot itself cannot fetch it does QQ
get the URL to try.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from .client import GLMClient
from .errors import UpstreamError

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # larger than any CogView picture; a cap, not a size
DOWNLOAD_TIMEOUT = 30.0  # seconds
PROMPT_LIMIT = 1000  # characters of a description sent to the model


@dataclass(frozen=True)
class Picture:
    """A drawn picture: where the platform keeps it, and its bytes (None: not downloaded)."""

    url: str
    data: bytes | None = None


class ImageMaker:
    """Draws with ``model`` through ``client`` (keys, cap, retries, log line and statistics
    as for an answer)."""

    def __init__(
        self,
        client: GLMClient,
        model: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self._download = httpx.AsyncClient(
            timeout=DOWNLOAD_TIMEOUT,
            follow_redirects=True,
            headers={"User-Agent": "glm-chat"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._download.aclose()

    async def draw(self, prompt: str, *, conversation: str = "") -> Picture:
        """One picture of ``prompt``; raises a ``GLMError`` (``ContentFilterError`` for a
        refused prompt) when the platform draws none."""
        data = await self._client.post_json(
            "images/generations",
            {"model": self.model, "prompt": prompt[:PROMPT_LIMIT]},
            model=self.model,
            purpose="draw",
            conversation=conversation,
        )
        url = _first_url(data)
        if url is None:
            raise UpstreamError("the platform drew no picture")
        return Picture(url, await self.download(url))

    async def download(self, url: str) -> bytes | None:
        """The picture's bytes, or None when they cannot be had (then QQ gets the URL)."""
        try:
            async with self._download.stream("GET", url) as response:
                kind = response.headers.get("content-type", "")
                if response.status_code != 200 or not kind.startswith("image/"):
                    return None
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        return None
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError:
            return None


def _first_url(data: dict[str, Any]) -> str | None:
    pictures = data.get("data")
    if not isinstance(pictures, list):
        return None
    for picture in pictures:
        url = picture.get("url") if isinstance(picture, dict) else None
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
    return None
