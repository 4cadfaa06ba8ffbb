"""API keys: the Authorization header each one yields, and a pool that spreads and rests them."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jwt

AuthMode = Literal["jwt", "key"]

# Zhipu's own SDK gives a token 210 s of life and reuses it for 180 s; so do we.
TOKEN_LIFETIME = 210.0
TOKEN_REUSE = 180.0


def key_label(key: str) -> str:
    """A name for a key that is safe to log: the id part, or a short fingerprint."""
    key_id, dot, _ = key.partition(".")
    if dot and key_id:
        return key_id
    return "key#" + hashlib.sha256(key.encode()).hexdigest()[:8]


def mint_token(key_id: str, secret: str, now: float, lifetime: float = TOKEN_LIFETIME) -> str:
    """The platform JWT: HS256 with ``sign_type: SIGN``, ``exp``/``timestamp`` in milliseconds."""
    now_ms = int(now * 1000)
    payload = {"api_key": key_id, "exp": now_ms + int(lifetime * 1000), "timestamp": now_ms}
    with warnings.catch_warnings():
        # The platform issues 16-character secrets: PyJWT's advice to use 32 bytes is noise
        # here (silenced for this call only, not for the host bot's own use of PyJWT).
        warnings.filterwarnings("ignore", message="The HMAC key is .* below the minimum")
        return jwt.encode(payload, secret, algorithm="HS256", headers={"sign_type": "SIGN"})


class Credential:
    """One key and the bearer token it yields, a JWT cached until shortly before it expires."""

    def __init__(self, key: str, mode: AuthMode, clock: Callable[[], float] = time.time):
        self._key = key
        self._mode = mode
        self._clock = clock
        self.label = key_label(key)
        self.tokens_minted = 0
        self._token: str | None = None
        self._token_renew_at = 0.0

    def bearer(self) -> str:
        """The token for ``Authorization: Bearer ...``."""
        if self._mode == "key":
            return self._key
        now = self._clock()
        if self._token is None or now >= self._token_renew_at:
            key_id, _, secret = self._key.partition(".")
            self._token = mint_token(key_id, secret, now)
            self._token_renew_at = now + TOKEN_REUSE
            self.tokens_minted += 1
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the platform said it expired: code 1003)."""
        self._token = None

    def __repr__(self) -> str:  # never the key itself
        return f"Credential({self.label!r}, mode={self._mode!r})"


@dataclass
class RestingKey:
    label: str
    until: float
    reason: str


class KeyPool:
    """Round-robin over the keys, skipping those resting after the platform refused them."""

    def __init__(
        self,
        keys: list[str],
        mode: AuthMode,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("KeyPool needs at least one key")
        self._credentials = [Credential(key, mode, clock) for key in keys]
        self._clock = clock
        self._next = 0
        self._resting: dict[str, RestingKey] = {}
        # Told of every rest this process decides (to share it with other processes).
        self.on_rest: Callable[[str, float, str], None] | None = None

    def __len__(self) -> int:
        return len(self._credentials)

    @property
    def labels(self) -> list[str]:
        """Each key's id part, never its secret."""
        return [c.label for c in self._credentials]

    @property
    def tokens_minted(self) -> int:
        return sum(c.tokens_minted for c in self._credentials)

    def pick(self) -> Credential:
        """The next key that is not resting; if all rest, the one whose rest ends first."""
        now = self._clock()
        count = len(self._credentials)
        for offset in range(count):
            credential = self._credentials[(self._next + offset) % count]
            rest = self._resting.get(credential.label)
            if rest is None or rest.until <= now:
                self._resting.pop(credential.label, None)
                self._next = (self._next + offset + 1) % count
                return credential
        soonest = min(self._resting.values(), key=lambda r: r.until)
        return next(c for c in self._credentials if c.label == soonest.label)

    def rest(self, credential: Credential, seconds: float, reason: str) -> None:
        """Keep ``credential`` out of rotation for ``seconds``."""
        self.rest_label(credential.label, seconds, reason)
        if self.on_rest is not None:
            self.on_rest(credential.label, seconds, reason)

    def rest_label(self, label: str, seconds: float, reason: str) -> None:
        """Keep the key labelled ``label`` (if it is one of ours) out of rotation."""
        if label in self.labels:
            self._resting[label] = RestingKey(label, self._clock() + seconds, reason)

    def resting(self) -> list[RestingKey]:
        """The keys resting now."""
        now = self._clock()
        return [rest for rest in self._resting.values() if rest.until > now]
