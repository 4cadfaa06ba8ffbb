"""``RecentTurns``: the newest turns and the summary of the conversations lately asked in.

A question reads its conversation's summary and newest turns; in a busy bot the same few
conversations are asked again and again, and each read costs a trip to the database thread
that is dearer than the rows. This keeps what was last read (and what was written since) in
memory, for a store that no other process writes: SQLite's, where every write to a turn or a
summary goes through this process's ``ContextStore``. PostgreSQL, shared by several processes,
is read every time.

A conversation's turns are numbered 1, 2, 3 ... with no gaps (a new turn takes the highest
number plus one, and turns are only ever removed all at once), so the turn after the newest
one held is known without asking.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .models import NumberedTurn, Summary, Turn

CONVERSATIONS = 128  # held at most; the least lately used goes first
TURNS = 64  # held at most per conversation; reads of more go to the database
UNREAD = object()  # the summary has not been read yet


@dataclass
class _Held:
    turns: list[NumberedTurn] = field(default_factory=list)  # the newest, oldest first
    complete_from: int | None = None  # every turn numbered from here on is held (None: unknown)
    summary: Summary | object | None = UNREAD
    keep: int = 0  # the most turns a read asked for: as many are held


class RecentTurns:
    """What the store last read or wrote of ``CONVERSATIONS`` conversations."""

    def __init__(self, conversations: int = CONVERSATIONS) -> None:
        self._limit = conversations
        self._held: OrderedDict[str, _Held] = OrderedDict()

    def newest(self, conversation: str, limit: int, after: int) -> list[NumberedTurn] | None:
        """The newest ``limit`` turns numbered above ``after``, oldest first; None when they
        are not all held."""
        held = self._held.get(conversation)
        if held is None or held.complete_from is None or limit > held.keep:
            return None
        turns = [numbered for numbered in held.turns if numbered.seq > after]
        if len(turns) < limit and held.complete_from > after + 1:
            return None  # older ones may exist that were never read
        self._held.move_to_end(conversation)
        return turns[-limit:] if limit else []

    def read(self, conversation: str, limit: int, after: int, turns: list[NumberedTurn]) -> None:
        """What the database returned for ``newest``'s question (``limit`` above 0)."""
        if limit > TURNS:
            return
        held = self._entry(conversation)
        held.turns, held.keep = list(turns), limit
        # Fewer than asked for: there are no others after ``after``.
        held.complete_from = turns[0].seq if len(turns) == limit else after + 1

    def added(self, conversation: str, turn: Turn, created_at: float) -> None:
        """A turn was stored: hold it as the newest."""
        held = self._held.get(conversation)
        if held is None or held.complete_from is None:
            return
        if not held.turns:  # nothing held to number it after: read it back when asked
            held.complete_from = None
            return
        held.turns.append(NumberedTurn(held.turns[-1].seq + 1, created_at, turn))
        if len(held.turns) > held.keep:
            del held.turns[: -held.keep]
            held.complete_from = max(held.complete_from, held.turns[0].seq)

    def summary(self, conversation: str) -> Summary | object | None:
        """The conversation's summary if held (None: it has none), else ``UNREAD``."""
        held = self._held.get(conversation)
        return UNREAD if held is None else held.summary

    def summary_read(self, conversation: str, summary: Summary | None) -> None:
        self._entry(conversation).summary = summary

    def forget(self, conversation: str, *, with_members: bool = False) -> None:
        """The conversation (``with_members``: and its members' own ones) lost its turns."""
        self._held.pop(conversation, None)
        if with_members:
            prefix = conversation + ":"
            for key in [key for key in self._held if key.startswith(prefix)]:
                del self._held[key]

    def _entry(self, conversation: str) -> _Held:
        held = self._held.get(conversation)
        if held is None:
            held = self._held[conversation] = _Held()
            if len(self._held) > self._limit:
                self._held.popitem(last=False)
        self._held.move_to_end(conversation)
        return held
