"""The web console under ``/glm/`` on NoneBot's own FastAPI app: pages, a JSON API, and the
access token that guards both.

The routes are added at import when the driver serves HTTP (``GLM_CONSOLE=on``); the token is
read (or generated) when the bot starts, and until then every route answers 503.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from nonebot import get_driver
from nonebot.log import logger

from ..config import Config
from ..startup import shown_host
from .access import Gate, door, load_or_create_token, token_path

PREFIX = "/glm"


def install(config: Config) -> bool:
    """Add the console's routes to the driver's app; False (said once) when the driver serves
    no FastAPI app to add them to."""
    if config.glm_console != "on":
        return False
    app: Any = getattr(get_driver(), "server_app", None)
    if app is None or not type(app).__module__.startswith("fastapi"):
        logger.info(
            "glm-chat console: off, it needs NoneBot's FastAPI driver (DRIVER=~fastapi);"
            " the bot answers in QQ all the same"
        )
        return False
    from . import api, pages  # FastAPI is only imported where the driver has it

    for router in (pages.public, pages.router, api.router):
        app.include_router(router)
    logging.getLogger("uvicorn.access").addFilter(_hide_tokens)
    return True


TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


def _hide_tokens(record: logging.LogRecord) -> bool:
    """uvicorn logs each request's path and query: never a login link's token. Only the
    console's own paths are touched; other plugins' lines pass as they are."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            TOKEN_IN_QUERY.sub(r"\1***", arg)
            if isinstance(arg, str) and arg.startswith(f"{PREFIX}/")
            else arg
            for arg in record.args
        )
    return True


def open_console(config: Config) -> None:
    """Read or generate the token, and log where to log in."""
    token, created = config.glm_console_token, False
    if token is None:
        token, created = load_or_create_token(token_path(config.glm_db_path))
    door.gate = Gate(token)
    driver = get_driver().config
    base = f"http://{shown_host(driver.host)}:{driver.port}{PREFIX}"
    door.link = f"{base}/login?token={token}"
    if config.glm_console_token is None:
        made = "generated, kept" if created else "kept"
        logger.info(
            f"glm-chat console: {door.link} (token {made} in {token_path(config.glm_db_path)})"
        )
    else:
        logger.info(f"glm-chat console: {base}/login (log in with GLM_CONSOLE_TOKEN)")


def close_console() -> None:
    door.gate = door.link = None


def login_link() -> str | None:
    """The link that logs in (it carries the token), while the console is open."""
    return door.link
