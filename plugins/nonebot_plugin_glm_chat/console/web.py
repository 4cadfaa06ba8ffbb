"""What every console route shares: the gate, the security headers, access checks, templates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..chat.queue import QueueClosedError
from ..glm.errors import code_meaning
from ..runtime import Services, running_services
from . import PREFIX
from .access import SESSION_COOKIE, Gate, door, same_origin
from .reads import context_title
from .writes import known_chat

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: under it Chromium sends ``Origin: null`` with the console's own forms.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
NO_STORE = {"Cache-Control": "no-store"}
STOPPING = "glm-chat is starting or stopping"


class ConsoleRoute(APIRoute):
    """A route whose responses, refusals included, carry the security headers (and are not
    cached, unless the route says otherwise)."""

    def get_route_handler(self):  # type: ignore[no-untyped-def]
        handler = super().get_route_handler()

        async def with_headers(request: Request):  # type: ignore[no-untyped-def]
            try:
                response = await handler(request)
            except HTTPException as error:
                response = JSONResponse(
                    {"detail": error.detail}, error.status_code, headers=error.headers
                )
            except RequestValidationError as error:
                response = JSONResponse({"detail": jsonable_encoder(error.errors())}, 422)
            except QueueClosedError:
                response = JSONResponse({"detail": STOPPING}, 503)
            for name, value in {**SECURITY_HEADERS, **NO_STORE}.items():
                response.headers.setdefault(name, value)
            return response

        return with_headers


def failure(status: int, detail: str, **headers: str) -> HTTPException:
    """An error answer (the route adds the security headers)."""
    return HTTPException(status, detail, headers=headers or None)


def gate() -> Gate:
    if door.gate is None:
        raise failure(503, STOPPING)
    return door.gate


def services() -> Services:
    running = running_services()
    if running is None:
        raise failure(503, STOPPING)
    return running


def chat_key(chat: str) -> str:
    """A chat key from the path: ``group:123``, ``private:456`` or ``console:playground``."""
    if not known_chat(chat):
        raise failure(404, "no such chat; a chat key looks like group:123 or private:456")
    return chat


def chat_path(chat: str) -> str:
    """A chat's page under the console."""
    return f"{PREFIX}/chats/{quote(chat, safe=':')}"


def address(request: Request) -> str:
    """The client's address (behind a trusted proxy, uvicorn has put the real one here)."""
    return request.client.host if request.client else "unknown"


def origin(request: Request) -> str:
    """This console's own origin, as the browser sees it."""
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


class LockedOut(Exception):
    """Too many wrong tokens from this address; ``wait`` seconds to go."""

    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


def check_token(request: Request, candidate: str) -> bool:
    """Whether ``candidate`` is the token; wrong ones count towards the address's lockout,
    and a locked-out address is refused (``LockedOut``) whatever it sends. A wrong one that
    another site made the browser send (``<img src=.../login?token=x>``) does not count: it
    would let any site lock the operator out."""
    checker, client = gate(), address(request)
    wait = checker.lockout.retry_after(client)
    if wait:
        raise LockedOut(wait)
    if checker.token_matches(candidate):
        checker.lockout.succeeded(client)
        return True
    if request.headers.get("sec-fetch-site") != "cross-site":
        checker.lockout.failed(client)
    return False


def logged_in(request: Request) -> bool:
    return gate().session_valid(request.cookies.get(SESSION_COOKIE))


def require_same_origin(request: Request) -> None:
    if not same_origin(request.method, dict(request.headers), origin(request)):
        raise failure(403, "cross-origin request refused")


async def api_access(request: Request) -> None:
    """The API: a Bearer token (scripts) or a session cookie from this origin (pages)."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        try:
            right = check_token(request, credentials)
        except LockedOut as locked:
            wait = {"Retry-After": str(locked.wait)}
            raise failure(429, "too many wrong tokens", **wait) from None
        if not right:
            raise failure(401, "wrong token", **{"WWW-Authenticate": "Bearer"})
        return
    if not logged_in(request):
        raise failure(401, "log in first", **{"WWW-Authenticate": "Bearer"})
    require_same_origin(request)


async def page_access(request: Request) -> None:
    """The pages: a session cookie, else to the login page; forms only from this origin."""
    if not logged_in(request):
        raise failure(303, "log in first", Location=f"{PREFIX}/login")
    require_same_origin(request)


# --- templates ------------------------------------------------------------------------------


def _clock(at: float | None) -> str:
    if not at:
        return "—"
    moment = datetime.fromtimestamp(at)
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def _number(value: float | int | None) -> str:
    return "—" if value is None else f"{value:,}"


def duration(seconds: float) -> str:
    """``45 秒``, ``5 分钟``, ``1 小时``, ``90 分钟``: the largest unit that divides it."""
    seconds = max(0.0, float(seconds))
    if seconds and seconds % 3600 == 0:
        return f"{seconds / 3600:g} 小时"
    if seconds and seconds % 60 == 0:
        return f"{seconds / 60:g} 分钟"
    return f"{seconds:g} 秒"


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    clock=_clock,
    number=_number,
    chat_path=chat_path,
    code_meaning=code_meaning,
    duration=duration,
    context_title=context_title,
)
templates.globals.update(prefix=PREFIX)


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status)
