"""Key rests across processes: when the platform refuses a key (quota spent, key revoked), the
process that saw it rests the key and tells the others through Redis, so that they stop
sending to it too. A process that starts later finds the rests still running."""

from __future__ import annotations

import json
import uuid

from ..glm.auth import KeyPool
from .link import FAILURES, PREFIX, RedisLink

CHANNEL = f"{PREFIX}:rests"


class SharedRests:
    def __init__(self, link: RedisLink, keys: KeyPool) -> None:
        self.link = link
        self.keys = keys
        self._me = uuid.uuid4().hex  # this process, so that it does not hear itself

    async def start(self) -> None:
        """Take up the rests under way, then share this process's and hear the others'."""
        if self.link.online:
            try:
                for label in self.keys.labels:
                    mark = f"{PREFIX}:rest:{label}"
                    reason, left = await self.link.redis.get(mark), await self.link.redis.pttl(mark)
                    if reason is not None and left > 0:
                        self.keys.rest_label(label, left / 1000, reason.decode())
            except FAILURES as error:
                self.link.lost(error)
        self.keys.on_rest = self._announce
        self.link.listen(CHANNEL, self._hear)

    def _announce(self, label: str, seconds: float, reason: str) -> None:
        if self.link.online:
            self.link.spawn(self._tell(label, seconds, reason))

    async def _tell(self, label: str, seconds: float, reason: str) -> None:
        message = json.dumps({"from": self._me, "label": label, "s": seconds, "why": reason})
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{PREFIX}:rest:{label}", reason, px=max(1, int(seconds * 1000)))
                pipe.publish(CHANNEL, message)
                await pipe.execute()
        except FAILURES as error:
            self.link.lost(error)

    def _hear(self, message: str) -> None:
        try:
            rest = json.loads(message)
            if rest["from"] != self._me:
                self.keys.rest_label(str(rest["label"]), float(rest["s"]), str(rest["why"]))
        except (ValueError, KeyError, TypeError):
            return  # not one of ours
