"""Arrival order per conversation: messages are answered in the order they reached the bot.

NoneBot dispatches each event through nested task groups, so two messages of one group can
reach a matcher in the opposite order to the one they arrived in. An event preprocessor still
runs in arrival order: it takes a ticket there, and a handler waits for its ticket's turn.
A ticket is returned when its handler is done, when the chat matcher passes the event by, or
at the latest when the event object is freed (right after NoneBot is done with it), so none can
leak; an event postprocessor would do the same at a NoneBot dispatch's cost per message.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nonebot.adapters.onebot.v11 import MessageEvent
from nonebot.message import event_preprocessor
from nonebot.typing import T_State

from .qq.events import chat_of

STATE_KEY = "glm_chat.ticket"


class Ticket:
    """A place in one conversation's queue."""

    __slots__ = ("__weakref__", "key", "left", "ready")

    def __init__(self, key: str) -> None:
        self.key = key
        self.ready = asyncio.Event()
        self.left = False


class ArrivalQueue:
    """Per-key FIFO queues of tickets; the head of each queue holds the turn."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Ticket]] = {}

    def __len__(self) -> int:
        return len(self._queues)

    def enter(self, key: str) -> Ticket:
        ticket = Ticket(key)
        queue = self._queues.setdefault(key, deque())
        queue.append(ticket)
        if len(queue) == 1:
            ticket.ready.set()
        return ticket

    async def wait_turn(self, ticket: Ticket) -> None:
        await ticket.ready.wait()

    def leave(self, ticket: Ticket) -> None:
        """Give up the ticket (idempotent); the next in its queue gets the turn."""
        if ticket.left:
            return
        ticket.left = True
        queue = self._queues[ticket.key]
        was_head = queue[0] is ticket
        queue.remove(ticket)
        if not queue:
            del self._queues[ticket.key]
        elif was_head:
            queue[0].ready.set()


arrivals = ArrivalQueue()


@event_preprocessor
async def _take_ticket(event: MessageEvent, state: T_State) -> None:
    # Ordered per chat: a group (all its members, in either mode) or a private chat.
    ticket = arrivals.enter(chat_of(event))
    state[STATE_KEY] = ticket
    weakref.finalize(event, arrivals.leave, ticket)


def pass_by(state: dict[Any, Any]) -> None:
    """This event will not be answered here: let the ones behind it go on."""
    if (ticket := state.get(STATE_KEY)) is not None:
        arrivals.leave(ticket)


@asynccontextmanager
async def in_turn(state: dict[Any, Any]) -> AsyncIterator[None]:
    """Run the block once every earlier message of this conversation has been dealt with."""
    ticket: Ticket | None = state.get(STATE_KEY)
    if ticket is None:  # an event that did not come through the preprocessor (tests)
        yield
        return
    try:
        await arrivals.wait_turn(ticket)
        yield
    finally:
        arrivals.leave(ticket)
