"""A small OneBot v11 implementation side (what NapCat or Lagrange are) for end-to-end tests.

It connects to the bot's reverse WebSocket, posts message events, answers the bot's API calls
(``send_msg``, ``get_msg``, forward messages...) and records every message the bot sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

SEND_ACTIONS = {"send_msg", "send_group_msg", "send_private_msg"}
FORWARD_ACTIONS = {"send_group_forward_msg", "send_private_forward_msg"}


@dataclass
class Sent:
    """One message the bot sent, as the QQ client received it."""

    action: str
    params: dict[str, Any]
    message_id: int
    received_at: float = field(default_factory=time.monotonic)

    @property
    def segments(self) -> list[dict[str, Any]]:
        message = self.params.get("message", [])
        return (
            message if isinstance(message, list) else [{"type": "text", "data": {"text": message}}]
        )

    @property
    def text(self) -> str:
        return "".join(s["data"].get("text", "") for s in self.segments if s["type"] == "text")

    @property
    def group_id(self) -> int | None:
        value = self.params.get("group_id")
        return int(value) if value is not None else None

    @property
    def user_id(self) -> int | None:
        value = self.params.get("user_id")
        return int(value) if value is not None else None

    def quotes(self) -> int | None:
        """The message id this one replies to, if it opens with a reply segment."""
        first = self.segments[0] if self.segments else {}
        return int(first["data"]["id"]) if first.get("type") == "reply" else None


@dataclass
class OneBotClient:
    """The QQ side of one bot account."""

    url: str
    self_id: int
    access_token: str | None = None
    sent: list[Sent] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # actions answered with a failure
    _ws: ClientConnection | None = None
    _reader: asyncio.Task[None] | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(10_000))
    _messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    _new_message: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect, retrying while the bot starts."""
        headers = {"X-Self-ID": str(self.self_id), "X-Client-Role": "Universal"}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ws = await connect(self.url, additional_headers=headers, open_timeout=5)
                break
            except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self._reader = asyncio.create_task(self._read())
        await self._post(
            {"post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"}
        )

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _post(self, event: dict[str, Any]) -> None:
        assert self._ws is not None, "connect() first"
        await self._ws.send(
            json.dumps({"time": int(time.time()), "self_id": self.self_id, **event})
        )

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self._ws:
                call = json.loads(raw)
                if "action" in call:
                    await self._ws.send(json.dumps(self._answer(call)))

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        action, params, echo = call["action"], call.get("params", {}), call.get("echo")
        if action in self.refuse:
            return {"status": "failed", "retcode": 1200, "data": None, "echo": echo}
        data: Any = None
        if action in SEND_ACTIONS | FORWARD_ACTIONS:
            message_id = next(self._ids)
            self.sent.append(Sent(action, params, message_id))
            self._remember(message_id, self.self_id, "bot", params.get("message", []))
            self._new_message.set()
            data = {"message_id": message_id}
        elif action == "get_msg":
            data = self._messages.get(int(params["message_id"]))
            if data is None:
                return {"status": "failed", "retcode": 1404, "data": None, "echo": echo}
        elif action == "get_group_info":
            group = int(params["group_id"])
            data = {"group_id": group, "group_name": f"测试群{group}", "member_count": 10}
        elif action == "get_login_info":
            data = {"user_id": self.self_id, "nickname": "bot"}
        return {"status": "ok", "retcode": 0, "data": data, "echo": echo}

    def _remember(self, message_id: int, user_id: int, nickname: str, message: Any) -> None:
        self._messages[message_id] = {
            "time": int(time.time()),
            "message_type": "group",
            "message_id": message_id,
            "real_id": message_id,
            "sender": {"user_id": user_id, "nickname": nickname},
            "message": message,
        }

    async def group_message(
        self,
        group_id: int,
        user_id: int,
        segments: list[dict[str, Any]],
        *,
        nickname: str = "member",
        role: str = "member",
    ) -> int:
        """Post a group message; returns its message id."""
        message_id = next(self._ids)
        self._remember(message_id, user_id, nickname, segments)
        await self._post(
            {
                "post_type": "message",
                "message_type": "group",
                "sub_type": "normal",
                "message_id": message_id,
                "group_id": group_id,
                "user_id": user_id,
                "anonymous": None,
                "message": segments,
                "raw_message": "",
                "font": 0,
                "sender": {"user_id": user_id, "nickname": nickname, "card": "", "role": role},
            }
        )
        return message_id

    async def mention(self, group_id: int, user_id: int, text: str, **kwargs: Any) -> int:
        """``@bot text`` in a group."""
        segments = [at(self.self_id), {"type": "text", "data": {"text": " " + text}}]
        return await self.group_message(group_id, user_id, segments, **kwargs)

    async def private_message(self, user_id: int, text: str, nickname: str = "friend") -> int:
        message_id = next(self._ids)
        segments = [{"type": "text", "data": {"text": text}}]
        await self._post(
            {
                "post_type": "message",
                "message_type": "private",
                "sub_type": "friend",
                "message_id": message_id,
                "user_id": user_id,
                "message": segments,
                "raw_message": text,
                "font": 0,
                "sender": {"user_id": user_id, "nickname": nickname},
            }
        )
        return message_id

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Sent]:
        """Wait until the bot has sent ``count`` messages in all; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            self._new_message.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"bot sent {len(self.sent)} of {count} messages")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._new_message.wait(), remaining)
        return self.sent[:count]

    async def wait_until(
        self, match: Callable[[Sent], bool], *, after: int = 0, timeout: float = 30.0
    ) -> Sent:
        """The first message the bot sent (from index ``after`` on) that ``match`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for sent in self.sent[after:]:
                if match(sent):
                    return sent
            await self.wait_for(len(self.sent) + 1, max(0.0, deadline - time.monotonic()))

    async def reply_to(self, message_id: int, timeout: float = 30.0) -> Sent:
        """Wait for the bot's message that quotes ``message_id``."""
        return await self.wait_until(lambda sent: sent.quotes() == message_id, timeout=timeout)


def at(qq: int | str) -> dict[str, Any]:
    return {"type": "at", "data": {"qq": str(qq)}}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "data": {"text": value}}


def reply(message_id: int) -> dict[str, Any]:
    return {"type": "reply", "data": {"id": str(message_id)}}
