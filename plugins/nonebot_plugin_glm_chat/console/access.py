"""Who may use the console: the access token, signed session cookies, a lockout for guessing,
and the same-origin rule for requests that change something.

The token is ``GLM_CONSOLE_TOKEN`` or, when that is unset, one generated at first start and
kept beside the database (mode 0600). A session cookie is signed with the token, so a new token
ends every session. Nothing here ever logs or shows the token except the login link.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

TOKEN_FILE = "console_token"
SESSION_COOKIE = "glm_console"
SESSION_SECONDS = 7 * 24 * 3600
FAILURES_ALLOWED = 10  # wrong tokens from one address ...
FAILURE_WINDOW = 60.0  # ... within this many seconds ...
LOCKOUT_SECONDS = 300.0  # ... lock that address out for this long
ADDRESSES_TRACKED = 10_000  # memory stays bounded under a flood of addresses
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token_path(db_path: Path) -> Path:
    """Where a generated token is kept: beside the database."""
    return db_path.parent / TOKEN_FILE


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token kept in ``path``, or a new one written there (0600): ``(token, created)``."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if len(token) >= 16:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return token, False
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # the mode above applies only to a file it creates
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token, True


class Lockout:
    """Counts wrong tokens per address; too many within a minute locks the address out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again (0: it may now)."""
        until = self._locked.get(address)
        if until is None:
            return 0
        left = until - self._clock()
        if left <= 0:
            del self._locked[address]
            return 0
        return max(1, round(left))

    def failed(self, address: str) -> None:
        now = self._clock()
        times = self._failures.pop(address, None) or deque()
        times.append(now)
        while times and times[0] <= now - FAILURE_WINDOW:
            times.popleft()
        if len(times) >= FAILURES_ALLOWED:
            self._locked[address] = now + LOCKOUT_SECONDS
            times.clear()
        else:
            self._failures[address] = times  # most recent last
        while len(self._failures) > ADDRESSES_TRACKED:
            self._failures.popitem(last=False)
        if len(self._locked) > ADDRESSES_TRACKED:  # drop the ended, then the oldest
            running = [(a, t) for a, t in self._locked.items() if t > now]
            self._locked = dict(running[-ADDRESSES_TRACKED:])

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class Gate:
    """Checks tokens and sessions against one access token."""

    def __init__(self, token: str, clock: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        self._clock = clock
        self.lockout = Lockout()

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.strip().encode(), self._token)

    def new_session(self) -> str:
        """A cookie value: ``expiry.nonce.signature``."""
        body = f"{int(self._clock()) + SESSION_SECONDS}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}"

    def session_valid(self, cookie: str | None) -> bool:
        if not cookie:
            return False
        body, _, signature = cookie.rpartition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return False
        expiry = body.partition(".")[0]
        return expiry.isdigit() and int(expiry) > self._clock()

    def _sign(self, body: str) -> str:
        return hmac.new(self._token, b"session:" + body.encode(), hashlib.sha256).hexdigest()


class Door:
    """The gate once the bot has started (the token is read from disk then), and the link that
    logs in."""

    gate: Gate | None = None
    link: str | None = None  # carries the token


door = Door()


def same_origin(method: str, headers: dict[str, str], origin: str) -> bool:
    """Whether a browser request may change something: safe methods always; others only when
    the browser says they come from ``origin`` (scheme://host[:port]) itself."""
    if method.upper() not in STATE_CHANGING:
        return True
    sent = headers.get("origin")
    if sent is not None and sent != "null":
        return sent.rstrip("/") == origin
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" == origin
    return False
