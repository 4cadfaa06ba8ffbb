"""What the operator is told at start: a bad setting stops the bot with one line naming it;
then what is wrong with the keys, and where the QQ client connects.

Nothing here ever logs a secret: ``GLM_API_KEY`` shows as its id part, the OneBot token as
"set" or "not set".
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from nonebot import get_driver, get_plugin_config
from nonebot.adapters.onebot.v11.config import Config as OneBotConfig
from nonebot.config import SettingsError
from nonebot.log import logger
from nonebot.utils import type_is_complex
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from .config import TOKEN_PLACEHOLDER, Config
from .glm.auth import key_label
from .memory.db import INSTALL_POSTGRES, SchemaTooNewError, StoreOpenError, masked_url

# Their values never reach the log, and they belong in .env.local or the environment.
SECRET_SETTINGS = frozenset({"glm_api_key", "glm_console_token", "glm_db_url"})
SECRET_NAMES = frozenset({"GLM_API_KEY", "ONEBOT_ACCESS_TOKEN", "GLM_CONSOLE_TOKEN"})
LOCAL_ENV_FILE = ".env.local"
REVERSE_WS_PATH = "/onebot/v11/ws"
NOT_CONFIGURED = "so the bot answers that it is not configured"


class StartupFailed(Exception):
    """The bot cannot start; the operator has already been told why, in one line."""


# --- settings -------------------------------------------------------------------------------


def load_config() -> Config:
    """The plugin's settings. A bad one stops the start: one line per bad setting, exit 1."""
    config: Config | None = None
    problems: list[str] = []
    try:
        config = get_plugin_config(Config)
    except SettingsError as error:  # a list setting that is not JSON; NoneBot stops there
        problems += [setting_line(name) for name in _not_json()] or [str(error)]
    except ValidationError as error:
        problems += _invalid(error)
    problems += _token_problems()
    if config is not None and config.glm_redis_url and importlib.util.find_spec("redis") is None:
        problems.append(
            "GLM_REDIS_URL is set, but the redis package is not installed: pip install"
            ' "nonebot-plugin-glm-chat[redis]" (in the checkout: pip install ".[redis]")'
        )
    if config is not None and config.glm_db_url and importlib.util.find_spec("asyncpg") is None:
        problems.append(
            f"GLM_DB_URL is set, but the asyncpg package is not installed: {INSTALL_POSTGRES}"
        )
    _warn_of_committed_secrets()
    if config is None or problems:
        for line in problems:
            logger.critical(line)
        raise SystemExit(1)
    return config


def _warn_of_committed_secrets() -> None:
    """A secret in ``.env`` or ``.env.{ENVIRONMENT}`` (files committed with the project) is one
    ``git commit -a`` away from being published: say where it belongs instead."""
    for file in env_files():
        path = Path(file).expanduser()
        if path.name == LOCAL_ENV_FILE or not path.is_file():
            continue
        found = {key.upper() for key, value in dotenv_values(path).items() if value}
        for name in sorted(found & SECRET_NAMES):
            logger.warning(
                f"{name} is written in {path.name}, a file committed with the project: move it"
                f" to {LOCAL_ENV_FILE} (git ignores it) or the environment"
            )


def setting_line(name: str, value: Any = None) -> str:
    """``GLM_X: 'value' is not <what is accepted>; write e.g. GLM_X=<example>``."""
    field = Config.model_fields[name]
    env = name.upper()
    written = _written_settings().get(name)
    shown = "the value" if name in SECRET_SETTINGS else repr(_text(written or value))
    return f"{env}: {shown} is not {field.description}; write e.g. {env}={_example(field)}"


def _invalid(error: ValidationError) -> list[str]:
    """One line per setting that failed validation (a list may fail in several items)."""
    inputs: dict[str, Any] = {}
    for item in error.errors():
        inputs.setdefault(str(item["loc"][0]), item["input"])
    return [setting_line(name, value) for name, value in inputs.items()]


def _not_json() -> list[str]:
    """The list settings whose written value is not JSON."""
    written = _written_settings()
    return [
        name
        for name, field in Config.model_fields.items()
        if type_is_complex(field.annotation)
        and (text := written.get(name)) is not None
        and not _is_json(text)
    ]


def _token_problems() -> list[str]:
    token = get_plugin_config(OneBotConfig).onebot_access_token
    if token is None or token.strip() != TOKEN_PLACEHOLDER:
        return []
    return [
        f"ONEBOT_ACCESS_TOKEN is still the template's published {TOKEN_PLACEHOLDER!r}, so anyone"
        f" could connect as your QQ account; set a long random string in {secrets_place()},"
        " and the same token in the QQ client"
    ]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _example(field: FieldInfo) -> str:
    if field.examples:
        return str(field.examples[0])
    default = field.get_default(call_default_factory=True)
    return f"{default:g}" if isinstance(default, float) else str(default)


# --- where settings come from -----------------------------------------------------------------


def env_files() -> tuple[str, ...]:
    """The dotenv files NoneBot reads, in order; a later one wins, the environment over all."""
    files = get_driver().config._env_file  # what get_plugin_config reads too
    if files is None:
        return ()
    if isinstance(files, (str, os.PathLike)):
        return (str(files),)
    return tuple(str(file) for file in files)


def secrets_place() -> str:
    """Where a secret belongs: ``.env.local`` (git-ignored) when read, else the last file read."""
    names = [Path(file).name for file in env_files()]
    if not names:
        return "the environment"
    return f"{LOCAL_ENV_FILE if LOCAL_ENV_FILE in names else names[-1]} or the environment"


def _written_settings() -> dict[str, str | None]:
    """Every setting as the operator wrote it, by lower-case name, the way NoneBot merges them."""
    written: dict[str, str | None] = {}
    for file in env_files():
        path = Path(file).expanduser()
        if path.is_file():
            written.update({key.lower(): value for key, value in dotenv_values(path).items()})
    written.update({key.lower(): value for key, value in os.environ.items()})
    return written


# --- keys and connection ----------------------------------------------------------------------


def keys_to_use(config: Config) -> list[str]:
    """The keys to call the API with; logs one line saying what is wrong with GLM_API_KEY."""
    usable, malformed = config.usable_keys()
    fix = (
        "copy the whole key (id.secret) from the BigModel console, or set GLM_AUTH=key for a"
        " raw key"
    )
    labels = ", ".join(key_label(key) for key in malformed)
    if usable:
        for key in malformed:
            logger.error(
                f"GLM_API_KEY entry {key_label(key)} is not id.secret and is not used; {fix}"
            )
        if config.placeholder_key:
            logger.warning(f"GLM_API_KEY: the placeholder {config.placeholder_key} is not used")
    elif len(malformed) == 1:
        logger.error(
            f"the only GLM_API_KEY entry ({labels}) is not id.secret, {NOT_CONFIGURED}; {fix}"
        )
    elif malformed:
        logger.error(
            f"none of the {len(malformed)} GLM_API_KEY entries ({labels}) is id.secret,"
            f" {NOT_CONFIGURED}; {fix}"
        )
    elif config.placeholder_key:
        logger.warning(
            f"GLM_API_KEY is still the placeholder {config.placeholder_key}, {NOT_CONFIGURED};"
            f" put your key from the BigModel console in {secrets_place()}"
        )
    else:
        logger.warning(
            f"GLM_API_KEY is not set, {NOT_CONFIGURED}; put GLM_API_KEY=<id.secret>"
            f" in {secrets_place()}"
        )
    return usable


def report_ready(config: Config) -> None:
    """The models, the database, and what to paste into the QQ client (never the token)."""
    usable, _ = config.usable_keys()
    db = masked_url(config.glm_db_url) if config.glm_db_url else config.glm_db_path
    logger.info(
        f"glm-chat ready: model={config.glm_model} vision={config.glm_vision_model}"
        f" mode={config.glm_call_mode} db={db} keys={len(usable)}"
    )
    connect = f"QQ client: add a reverse WebSocket to {reverse_ws_url()}"
    if get_plugin_config(OneBotConfig).onebot_access_token:
        logger.info(f"{connect} with the access token set in ONEBOT_ACCESS_TOKEN")
    else:
        logger.warning(
            f"{connect}; ONEBOT_ACCESS_TOKEN is not set, so anything that reaches this port can"
            f" act as the bot: set one in {secrets_place()} and the same in the QQ client"
        )


def reverse_ws_url() -> str:
    """``ws://HOST:PORT/onebot/v11/ws`` from NoneBot's HOST and PORT."""
    config = get_driver().config
    return f"ws://{shown_host(config.host)}:{config.port}{REVERSE_WS_PATH}"


def shown_host(host: object) -> str:
    """HOST as it goes into a URL another program can use."""
    address = ip_address(str(host))
    if address.is_unspecified:
        return "<this machine's address>"
    return f"[{address}]" if address.version == 6 else str(address)


# --- the database -----------------------------------------------------------------------------


@contextmanager
def stop_on_store_error() -> Iterator[None]:
    """Turn a database that cannot be opened into one line naming its setting (GLM_DB_PATH
    or GLM_DB_URL), and a stop.

    An exception from a startup hook reaches uvicorn, which logs its traceback and exits with
    code 3; the line already says everything, so that traceback is left out of the log.
    """
    try:
        yield
    except StoreOpenError as error:
        logger.critical(f"{error.setting}: {error}; {_store_advice(error)}")
        logging.getLogger("uvicorn.error").addFilter(_without_told_tracebacks)
        raise StartupFailed(str(error)) from None


def _store_advice(error: StoreOpenError) -> str:
    if error.setting == "GLM_DB_URL":
        if isinstance(error, SchemaTooNewError):
            return "update glm-chat, or set GLM_DB_URL to another database"
        return (
            "check that the server runs and that the URL's user, password and database are"
            " right, or unset GLM_DB_URL to use the SQLite file at GLM_DB_PATH"
        )
    if isinstance(error, SchemaTooNewError):
        return "update glm-chat, or set GLM_DB_PATH to another file"
    return (
        "set GLM_DB_PATH to a file in a folder the bot can write, e.g. GLM_DB_PATH=data/glm_chat.db"
    )


def _without_told_tracebacks(record: logging.LogRecord) -> bool:
    """Drop uvicorn's traceback of a ``StartupFailed``: the operator was told in one line."""
    return StartupFailed.__name__ not in record.getMessage()
