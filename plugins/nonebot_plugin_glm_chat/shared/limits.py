"""A member's cooldown and the once-a-day notices, kept in Redis so that they hold across every
bot process (``GLM_REDIS_URL``); while Redis cannot be reached, each process keeps its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ..chat.limits import Cooldown, OncePerDay, Verdict
from .link import FAILURES, PREFIX, RedisLink

# KEYS[1]: the member's window; ARGV[1]: its milliseconds. {verdict, milliseconds left}:
# 0 ask (the window starts), 1 too soon (say so), 2 too soon and told already.
_COOLDOWN = """
local state = redis.call('GET', KEYS[1])
if not state then
    redis.call('SET', KEYS[1], '0', 'PX', ARGV[1])
    return {0, 0}
end
local left = redis.call('PTTL', KEYS[1])
if state == '0' then
    redis.call('SET', KEYS[1], '1', 'KEEPTTL')
    return {1, left}
end
return {2, left}
"""
_VERDICTS = (Verdict.ASK, Verdict.WARN, Verdict.QUIET)
DAY_SECONDS = 26 * 3600  # a notice's mark outlives its day, whatever the time zone


class SharedCooldown:
    """``Cooldown.ask`` across processes."""

    def __init__(self, link: RedisLink, local: Cooldown) -> None:
        self.link = link
        self.local = local
        self._script = link.redis.register_script(_COOLDOWN)

    async def ask(self, key: str, seconds: float) -> tuple[Verdict, float]:
        if seconds <= 0 or not self.link.online:
            return await self.local.ask(key, seconds)
        try:
            code, left = await self._script(
                keys=[f"{PREFIX}:cooldown:{key}"], args=[max(1, int(seconds * 1000))]
            )
        except FAILURES as error:
            self.link.lost(error)
            return await self.local.ask(key, seconds)
        return _VERDICTS[int(code)], max(0, int(left)) / 1000


class SharedNotices:
    """``OncePerDay.first_today`` across processes, for one kind of notice."""

    def __init__(
        self,
        link: RedisLink,
        local: OncePerDay,
        kind: str,
        today: Callable[[], str] = lambda: date.today().isoformat(),
    ) -> None:
        self.link = link
        self.local = local
        self.kind = kind
        self._today = today

    async def first_today(self, key: str) -> bool:
        if not self.link.online:
            return await self.local.first_today(key)
        mark = f"{PREFIX}:told:{self.kind}:{self._today()}:{key}"
        try:
            return bool(await self.link.redis.set(mark, 1, nx=True, ex=DAY_SECONDS))
        except FAILURES as error:
            self.link.lost(error)
            return await self.local.first_today(key)
