"""The JSON API under ``/glm/api/``: what the pages show and change, for scripts as well."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from nonebot.log import logger
from pydantic import BaseModel

from ..chat.queue import QueueClosedError
from ..glm.errors import GLMError, user_message
from ..runtime import Services
from . import reads
from .web import PREFIX, ConsoleRoute, api_access, chat_key, failure, services
from .writes import (
    PLAYGROUND,
    ChangeRefused,
    SettingsPatch,
    ask_playground,
    change_settings,
    reset_chat,
)

router = APIRouter(
    prefix=f"{PREFIX}/api", route_class=ConsoleRoute, dependencies=[Depends(api_access)]
)
MAX_DAYS = 366
MAX_OFFSET = 10**9


class PlaygroundMessage(BaseModel):
    message: str


ChatKey = Annotated[str, Depends(chat_key)]


@router.get("/overview")
async def overview() -> dict[str, Any]:
    return await reads.overview(services())


@router.get("/chats")
async def chats(
    q: str = "",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return await reads.chats(services(), search=q.strip(), offset=offset, limit=limit)


@router.get("/chats/{chat}")
async def chat(
    chat: ChatKey, limit: Annotated[int, Query(ge=1, le=1000)] = reads.TURNS_SHOWN
) -> dict[str, Any]:
    return await reads.chat(services(), chat, limit)


@router.patch("/chats/{chat}")
async def patch_chat(chat: ChatKey, patch: SettingsPatch) -> dict[str, Any]:
    running = services()
    try:
        options = await change_settings(running, chat, patch)
    except ChangeRefused as refusal:
        raise failure(422, str(refusal)) from None
    return reads.settings_of(running, chat, options)


@router.post("/chats/{chat}/reset")
async def reset(chat: ChatKey) -> dict[str, int]:
    return {"removed": await reset_chat(services(), chat)}


@router.get("/usage")
async def usage(days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 14) -> dict[str, Any]:
    return await reads.usage(services(), days)


@router.get("/calls")
async def calls(
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    conversation: str = "",
    failed: bool = False,
    model: str = "",
) -> list[dict[str, Any]]:
    return reads.calls(
        services(), limit=limit, conversation=conversation, failed_only=failed, model=model
    )


@router.post("/playground")
async def playground(body: PlaygroundMessage, request: Request):  # type: ignore[no-untyped-def]
    """The answer as JSON; with ``Accept: text/event-stream``, as server-sent events
    (``start``, ``delta`` pieces, then ``done`` with the whole answer, or ``error``)."""
    if "text/event-stream" in request.headers.get("accept", ""):
        stream = _stream_answer(services(), body.message)
        return StreamingResponse(stream, media_type="text/event-stream")
    try:
        completion = await ask_playground(services(), body.message)
    except ChangeRefused as refusal:
        raise failure(422, str(refusal)) from None
    except GLMError as error:
        return JSONResponse({"error": user_message(error)}, status_code=502)
    return {"answer": completion.content, "model": completion.model, "usage": _usage(completion)}


def _usage(completion: Any) -> dict[str, int]:
    usage = completion.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream_answer(running: Services, message: str) -> AsyncIterator[str]:
    """Pieces as the model writes them; the turn is kept only if the browser is still there
    when the answer is complete. Every ending is an event: the headers went out already."""
    pieces: asyncio.Queue[str] = asyncio.Queue()
    connected = True  # until the response is closed (Starlette closes it when the browser goes)
    asking = asyncio.ensure_future(
        ask_playground(running, message, on_text=pieces.put_nowait, delivered=lambda: connected)
    )
    try:
        yield _event("start", {"conversation": PLAYGROUND})  # the headers go out now
        while not asking.done():
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({asking, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield _event("delta", {"text": getter.result()})
            else:
                getter.cancel()
        while not pieces.empty():  # written in the same step as the answer's end
            yield _event("delta", {"text": pieces.get_nowait()})
        try:
            completion = asking.result()
        except ChangeRefused as refusal:
            yield _event("error", {"message": str(refusal)})
        except GLMError as error:
            yield _event("error", {"message": user_message(error)})
        except QueueClosedError:
            yield _event("error", {"message": "机器人正在关闭，没有回答。"})
        except Exception as error:
            logger.opt(exception=error).error("glm-chat: the playground failed")
            yield _event("error", {"message": "出了点意外，没能回答。"})
        else:
            yield _event("done", {"answer": completion.content, "usage": _usage(completion)})
    finally:
        connected = False
        if not asking.done():
            asking.cancel()
