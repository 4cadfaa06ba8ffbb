"""Where a QQ message enters its chat's queue, and what it asks the bot to do.

A message takes its place in the queue the moment the adapter parses it: before the adapter
awaits anything for it (looking up a quoted message with ``get_msg`` takes a round trip, during
which later messages would overtake it). The rule of our one matcher then decides what the
message asks for: nothing (the place is given up at once; a group message is kept as
background, the common case in a busy group, and now and then prompts a remark that takes its
place), a ``/glm`` command or a question, whose work the matcher hands over.

A message another plugin takes first is not ours: neither answered nor kept as background. A
matcher of higher priority that blocks it keeps it from our rule, and our event postprocessor
gives its place up; a preprocessor that ignores it stops NoneBot before that, and the place is
given up when the event is freed.

NoneBot runs each parameter of a processor or rule checker in tasks of its own (two, about as
costly as the function each), and every processor in a task group: so the rule is checked
without them (``_Decided``), and the one processor asks for the event alone.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from nonebot import get_bots, get_driver, on_message
from nonebot.adapters.onebot.v11 import (
    Adapter,
    Bot,
    GroupMessageEvent,
    MessageEvent,
)
from nonebot.consts import CMD_ARG_KEY, CMD_KEY, CMD_WHITESPACE_KEY, PREFIX_KEY
from nonebot.matcher import current_matcher
from nonebot.message import event_postprocessor
from nonebot.rule import Rule
from nonebot.typing import T_State
from pydantic import PrivateAttr

from ..chat.queue import ChatQueues, Place, Work
from ..chat.reading import ReadingAlong
from ..runtime import Services, running_services
from .answer import answer
from .commands import run_command, runs_on_own
from .delivery import Outbox
from .events import chat_of, glm_command, is_superuser, mentions, replied_to
from .listening import overhear

STATE_KEY = "glm_chat.arrival"
PRIVATE_CLOSED = "这个机器人目前不接受私聊，请在群里@我。"


@dataclass(frozen=True)
class Arrival:
    """A message's place and its number in arrival order (what the group said before it is
    its background), and ``unclaimed``, which gives both up: called when the message is not
    ours, or when the event is freed unclaimed."""

    place: Place
    seq: int
    unclaimed: weakref.finalize

    @classmethod
    def of(cls, event: MessageEvent, services: Services) -> Arrival:
        chat = chat_of(event)
        place = services.queues.reserve(chat)
        seq = services.reading.arrive(chat)
        return cls(place, seq, weakref.finalize(event, _unclaimed, services.reading, place, seq))

    def give(self, work: Work | None) -> None:
        """Fill the place; the safety net is no longer needed (and must not keep ``work``)."""
        self.unclaimed.detach()
        ChatQueues.fill(self.place, work)


@dataclass(frozen=True, repr=False)
class Decision:
    """A question or command on its way from our matcher's rule to its handler, in the state.

    No repr: NoneBot writes the state into a TRACE line each time a matcher runs, built even
    when nothing is logged at TRACE, and this one's would repr the whole event once more.
    """

    arrival: Arrival
    work: Work


def _unclaimed(reading: ReadingAlong, place: Place, seq: int) -> None:
    ChatQueues.fill(place, None)
    reading.pass_over(seq)


def _arrive(event: MessageEvent) -> Arrival | None:
    """Reserve ``event``'s place as it is parsed, when the bot is running."""
    services = running_services()
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # built outside the bot's loop (a test): the rule reserves
        return None
    return Arrival.of(event, services) if services is not None else None


E = TypeVar("E", bound=MessageEvent)


def arriving(base: type[E]) -> type[E]:
    """``base`` (the adapter's model for these messages, or the one another plugin set) that
    also takes its place in its chat's queue as it is parsed."""

    class Arriving(base):  # type: ignore[valid-type,misc]
        _glm_arrival: Arrival | None = PrivateAttr(default=None)

        def model_post_init(self, context: Any, /) -> None:
            super().model_post_init(context)
            self._glm_arrival = _arrive(self)

    Arriving.__name__ = Arriving.__qualname__ = base.__name__  # as the host's logs know it
    return Arriving


def register_arrival_models() -> None:
    """Make the OneBot adapter parse group and private messages with ``arriving`` models.

    The adapter keeps one model per kind of event for the whole process: ours extends the one
    in place (another plugin's own included) instead of replacing it, and does nothing while
    glm-chat is not running. A plugin that sets its model later wins; then messages take their
    places in the preprocessor instead, a moment later (see ``_decide``).
    """
    for kind in ("group", "private"):
        current = next(Adapter.get_event_model({"post_type": "message", "message_type": kind}))
        if "_glm_arrival" not in current.__private_attributes__:
            Adapter.add_custom_model(arriving(current))


register_arrival_models()


async def _decide(bot: Bot, event: MessageEvent, state: T_State) -> bool:
    """Decide what ``event`` asks for; whether it is work for our matcher (then it is in
    ``state``). Anything else has given its place up or taken it (a remark)."""
    arrival: Arrival | None = getattr(event, "_glm_arrival", None)
    services = running_services()
    if services is None:
        if arrival is not None:
            arrival.give(None)
        return False
    arrival = arrival or Arrival.of(event, services)
    try:
        work = await work_for(bot, event, state, services, arrival.seq)
    except BaseException:
        arrival.give(None)
        raise
    finally:
        services.reading.pass_over(arrival.seq)  # unless kept as background: settled
    if work is None or isinstance(work, Aside):
        arrival.give(work)
        return False
    state[STATE_KEY] = Decision(arrival, work)
    return True


# In personal mode a remark (on the group's shared conversation) runs beside the members'
# lanes, not after all of them.
REMARK_LANE = "\0remark"


@dataclass(frozen=True)
class Aside(Work):
    """Work that a message prompts without asking for it (a remark on what the group said):
    it takes the message's place at once, with no matcher to hand it over."""


async def work_for(
    bot: Bot, event: MessageEvent, state: T_State, services: Services, seq: int
) -> Work | None:
    """What ``event`` (numbered ``seq`` on arrival) asks of the bot (a command, a question),
    what it prompts (an ``Aside``), or None."""
    config = services.config
    user = str(event.user_id)
    # Never the bot itself, another bot, or another QQ account of this one (its answers).
    if user == str(event.self_id) or user in config.glm_ignore_users or user in get_bots():
        return None
    group = isinstance(event, GroupMessageEvent)
    if group and config.glm_groups and event.group_id not in config.glm_groups:
        return None
    starts = get_driver().config.command_start
    command = glm_command(event.get_message(), starts)
    if command is None:
        if isinstance(event, GroupMessageEvent) and not _addressed(event, services):
            if _looks_like_a_command(event, starts) or _for_another_account(event):
                return None  # not background either
            remark = await overhear(bot, event, services, seq)
            return Aside(remark, REMARK_LANE) if remark is not None else None
        if _other_command(state):
            return None
    outbox = Outbox(bot, services.sent)
    if not group and not _may_talk_privately(event, config.glm_private, command is not None):
        return await _private_closed(outbox, event, services)
    # The group's background before this message goes with it (seq: it came before it).
    if command is not None:
        name, argument = command
        member = user if group and runs_on_own(name, argument) else None
        return Work(partial(run_command, outbox, event, name, argument, seq), member)
    return Work(partial(answer, outbox, event, seq), user if group else None)


def _addressed(event: GroupMessageEvent, services: Services) -> bool:
    """An @, a NICKNAME, or a reply to one of the bot's messages (known by its id even when the
    QQ client could not look the quoted one up)."""
    if event.to_me or mentions(event.get_message(), str(event.self_id)):
        return True
    quoted = replied_to(event)
    return quoted is not None and quoted in services.sent


def _for_another_account(event: GroupMessageEvent) -> bool:
    """Whether the message @s, or replies to, another QQ account of this bot process (that
    account answers it: it is nobody's background)."""
    accounts = get_bots()
    if len(accounts) < 2:
        return False
    if any(seg.type == "at" and str(seg.data.get("qq")) in accounts for seg in event.get_message()):
        return True
    sender = event.reply.sender.user_id if event.reply is not None else None
    return sender is not None and str(sender) in accounts


def _looks_like_a_command(event: MessageEvent, starts: Iterable[str]) -> bool:
    """Whether the message opens with a command prefix (``/``), whoever's command it is."""
    message = event.get_message()
    if not message or message[0].type != "text":
        return False
    head = message[0].data.get("text", "").lstrip()
    return any(start and head.startswith(start) for start in starts)


def _may_talk_privately(event: MessageEvent, private: str, command: bool) -> bool:
    """``GLM_PRIVATE``: ``on`` anyone; ``superusers`` only they; ``off`` only their commands."""
    if private == "on":
        return True
    return is_superuser(event) and (private == "superusers" or command)


def _other_command(state: T_State) -> bool:
    """Whether the message starts with another plugin's command (then it is not a question),
    as NoneBot found it before matching.

    A command name followed directly by text (``/weatherfoo``) does not count, as with
    ``force_whitespace``.
    """
    prefix = state.get(PREFIX_KEY) or {}
    if not prefix.get(CMD_KEY):
        return False
    return not prefix.get(CMD_ARG_KEY) or prefix.get(CMD_WHITESPACE_KEY) is not None


async def _private_closed(outbox: Outbox, event: MessageEvent, services: Services) -> Work | None:
    """``GLM_PRIVATE=superusers``: others are told once a day; ``off``: nobody is told."""
    if services.config.glm_private == "off":
        return None
    if not await services.private_notices.first_today(str(event.user_id)):
        return None
    return Work(partial(outbox.say, event, PRIVATE_CLOSED))


@event_postprocessor
async def _give_up_unclaimed(event: MessageEvent) -> None:
    """Another plugin took the message first (our rule never saw it), or our matcher did not
    run: its place is given up (a no-op once it was given)."""
    arrival: Arrival | None = getattr(event, "_glm_arrival", None)
    if arrival is not None:
        arrival.unclaimed()


class _Decided(Rule):
    """Our matcher's rule: ``_decide`` found work for it.

    Called directly: as a checker, NoneBot would solve its three parameters in tasks and task
    groups of their own. The checker is kept, for whatever reads a rule's checkers.
    """

    def __init__(self) -> None:
        super().__init__(_decide)

    async def __call__(self, bot: Any, event: Any, state: T_State, *args: Any) -> bool:
        if not (isinstance(bot, Bot) and isinstance(event, MessageEvent)):
            return False
        return await _decide(bot, event, state)


# The plugin's one matcher, for questions and commands alike: checking a matcher costs NoneBot
# about as much CPU as echoing the message, so a message should meet one, not several. It keeps
# from the host bot's other plugins only the messages it answered.
waiter = on_message(priority=10, block=False)
waiter.rule = _Decided()  # ``on_message`` would copy a rule's checkers into a plain Rule


@waiter.handle()
async def _hand_over_and_wait() -> None:
    matcher = current_matcher.get()  # not a parameter: each costs NoneBot two tasks
    decision: Decision = matcher.state[STATE_KEY]
    decision.arrival.give(decision.work)
    await decision.arrival.place.wait()
    if not decision.arrival.place.let_go:
        matcher.stop_propagation()
