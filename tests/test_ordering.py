import asyncio
import gc

from plugins.glm_chat.ordering import STATE_KEY, ArrivalQueue, _take_ticket, arrivals, in_turn
from tests.support.events import group_message


async def test_turns_follow_arrival_order_whatever_order_the_waiters_come_in():
    queue = ArrivalQueue()
    tickets = [queue.enter("group:1") for _ in range(4)]
    done: list[int] = []

    async def work(index: int) -> None:
        await queue.wait_turn(tickets[index])
        done.append(index)
        await asyncio.sleep(0)
        queue.leave(tickets[index])

    await asyncio.gather(*(work(i) for i in (3, 1, 2, 0)))
    assert done == [0, 1, 2, 3]
    assert len(queue) == 0


async def test_passing_by_from_the_middle_does_not_hold_anyone_up():
    queue = ArrivalQueue()
    first, chatter, second = (queue.enter("group:1") for _ in range(3))
    other = queue.enter("group:2")
    assert first.ready.is_set() and other.ready.is_set() and not second.ready.is_set()
    queue.leave(chatter)
    queue.leave(chatter)  # idempotent
    queue.leave(first)
    assert second.ready.is_set()


async def test_a_ticket_is_returned_when_its_event_is_freed():
    event = group_message("hi", group_id=990)
    state: dict = {}
    await _take_ticket(event, state)
    ticket = state.pop(STATE_KEY)
    follower = arrivals.enter("group:990")
    assert not follower.ready.is_set()
    del event
    gc.collect()
    assert ticket.left and follower.ready.is_set()
    arrivals.leave(follower)


async def test_in_turn_without_a_ticket_runs_at_once():
    async with in_turn({}):
        pass
