"""The console's pages (Chinese), rendered on the server from the same data as the API."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..memory.models import DayUsage
from . import reads
from .access import SESSION_COOKIE, SESSION_SECONDS
from .charts import DANGER, stacked_bars
from .web import (
    HERE,
    PREFIX,
    ConsoleRoute,
    LockedOut,
    chat_key,
    chat_path,
    check_token,
    failure,
    gate,
    logged_in,
    page,
    page_access,
    require_same_origin,
    services,
)
from .writes import (
    PLAYGROUND,
    ChangeRefused,
    SettingsPatch,
    change_settings,
    reset_chat,
)

PAGE_SIZE = 50
MAX_PAGE = 10**6
STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}

public = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)
router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, dependencies=[Depends(page_access)])


# --- logging in -------------------------------------------------------------------------------


def _logged_in_response(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        gate().new_session(),
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _login_form(error: str = "", status: int = 200, **headers: str) -> HTMLResponse:
    response = page("login.html", status, error=error)
    response.headers.update(headers)
    return response


def _log_in(request: Request, token: str) -> Response:
    """Log in with ``token``, or the form again saying why not."""
    if not token:
        return _login_form("请输入访问令牌。", 401)
    try:
        right = check_token(request, token)
    except LockedOut as locked:
        minutes = max(1, round(locked.wait / 60))
        return _login_form(
            f"错误次数太多，请 {minutes} 分钟后再试。", 429, **{"Retry-After": str(locked.wait)}
        )
    return _logged_in_response(request) if right else _login_form("访问令牌不对。", 401)


@public.get("/login")
async def login_page(request: Request, token: str = "") -> Response:
    """The form; ``?token=T`` (the start-up log's link) logs in at once, and the redirect
    takes the token out of the address bar."""
    if token:
        return _log_in(request, token)
    if logged_in(request):
        return RedirectResponse(f"{PREFIX}/", status_code=303)
    return _login_form()


@public.post("/login")
async def login(request: Request) -> Response:
    require_same_origin(request)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return _log_in(request, (form.get("token") or [""])[0])


@public.post("/logout")
async def logout(request: Request) -> Response:
    require_same_origin(request)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@public.get("/static/{name}")
async def static(name: str) -> Response:
    media_type = STATIC.get(name)
    if media_type is None:
        raise failure(404, "not found")
    body = (HERE / "static" / name).read_bytes()
    return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=300"})


# --- pages ------------------------------------------------------------------------------------


@router.get("/")
async def overview_page() -> HTMLResponse:
    data = await reads.overview(services())
    hours, days = data["calls_by_hour"], data["tokens_by_day"]
    hours_chart = stacked_bars(
        [datetime.fromtimestamp(hour["start"]).strftime("%H时") for hour in hours],
        [
            ("成功", [hour["calls"] - hour["failed"] for hour in hours]),
            ("失败", [hour["failed"] for hour in hours]),
        ],
        height=200,
        colours=[0, DANGER],
    )
    days_chart = stacked_bars(
        [day["day"][5:] for day in days], [("tokens", [day["tokens"] for day in days])], height=200
    )
    return page(
        "overview.html", nav="overview", data=data, hours_chart=hours_chart, days_chart=days_chart
    )


@router.get("/chats")
async def chats_page(q: str = "", p: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1) -> HTMLResponse:
    search = q.strip()
    data = await reads.chats(services(), search=search, offset=(p - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-data["total"] // PAGE_SIZE))
    hearing = services().reading.on  # False: GLM_BACKGROUND_MESSAGES=0, no group is heard
    return page("chats.html", nav="chats", data=data, q=search, p=p, pages=pages, hearing=hearing)


async def _chat_page(chat: str, *, notice: str = "", error: str = "", status: int = 200):
    data = await reads.chat(services(), chat)
    return page("chat.html", status, nav="chats", data=data, notice=notice, error=error)


NOTICES = {"saved": "设置已保存。", "reset": "上下文已清空。"}


@router.get("/chats/{chat}")
async def chat_page(chat: str, done: str = "") -> HTMLResponse:
    return await _chat_page(chat_key(chat), notice=NOTICES.get(done, ""))


@router.post("/chats/{chat}/settings")
async def save_settings(chat: str, request: Request) -> Response:
    """The settings form. Persona and model change only when they were edited, so that a
    value the form would not accept itself (set by ``/glm model``) does not block the rest."""
    chat = chat_key(chat)
    form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)

    def field(name: str) -> str:  # browsers send a textarea's line breaks as CRLF
        return (form.get(name) or [""])[0].replace("\r\n", "\n")

    current = await services().chat.options(chat)
    edited = {
        name: field(name)
        for name, now in (("persona", current.persona), ("model", current.model))
        if field(name).strip() != (now or "").strip()
    }
    if field("mode") in ("shared", "personal"):
        edited["mode"] = field("mode")
    if chat.startswith("group:"):
        # Only a change: turning listening off deletes what was kept, so it is never re-sent.
        # (The box is disabled, and so absent, while GLM_BACKGROUND_MESSAGES=0.)
        listen = field("listen") == "on"
        if services().reading.on and listen != current.listen:
            edited["listen"] = listen
        if "chime" in form:
            chime = field("chime").strip()  # anything but a few digits is refused as it is
            edited["chime"] = int(chime) if re.fullmatch(r"[0-9]{1,6}", chime) else chime
    patch = SettingsPatch(
        enabled=field("enabled") == "on",
        search=field("search") == "on",
        tools=field("tools") == "on",
        **edited,
    )
    try:
        await change_settings(services(), chat, patch)
    except ChangeRefused as refusal:
        return await _chat_page(chat, error=str(refusal), status=422)
    return RedirectResponse(f"{chat_path(chat)}?done=saved", 303)


@router.post("/chats/{chat}/reset")
async def reset(chat: str) -> Response:
    chat = chat_key(chat)
    await reset_chat(services(), chat)
    return RedirectResponse(f"{chat_path(chat)}?done=reset", 303)


@router.get("/usage")
async def usage_page(days: Annotated[int, Query(ge=1, le=366)] = 14) -> HTMLResponse:
    data = await reads.usage(services(), days)
    usage_chart = stacked_bars(
        [day[5:] for day in data["days"]],
        [(series["chat"], series["tokens"]) for series in data["series"]],
    )
    return page("usage.html", nav="usage", data=data, days=days, usage_chart=usage_chart)


@router.get("/usage.csv")
async def usage_csv(days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    rows = await reads.usage_rows(services(), days)
    text = await asyncio.to_thread(_csv, rows)  # a large export must not stall QQ answers
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="glm-usage-{days}d.csv"'},
    )


@router.get("/playground")
async def playground_page() -> HTMLResponse:
    data = await reads.chat(services(), PLAYGROUND, 50)
    return page("playground.html", nav="playground", data=data)


@router.get("/calls")
async def calls_page(conversation: str = "", failed: bool = False, model: str = "") -> HTMLResponse:
    filters = {"conversation": conversation.strip(), "failed": failed, "model": model.strip()}
    data = reads.calls(
        services(),
        limit=200,
        conversation=filters["conversation"],
        failed_only=failed,
        model=filters["model"],
    )
    return page("calls.html", nav="calls", calls=data, filters=filters)


def _csv(rows: list[DayUsage]) -> str:
    """``day,chat,tokens,turns``, after a BOM so that Excel reads the file as UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(["day", "chat", "tokens", "turns"])
    writer.writerows([row.day, row.chat, row.tokens, row.turns] for row in rows)
    return out.getvalue()
