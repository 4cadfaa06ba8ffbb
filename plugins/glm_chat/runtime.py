"""The services the matchers use: opened on NoneBot's startup, closed on shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from nonebot.log import logger

from .chat.limits import Cooldown, OncePerDay
from .chat.service import ChatService, ChatSettings
from .chat.stats import CallStats
from .config import Config
from .glm.auth import KeyPool, key_label
from .glm.client import CallRecord, GLMClient
from .memory.store import ContextStore


@dataclass(frozen=True)
class Services:
    """What the matchers need while the bot runs."""

    config: Config
    chat: ChatService
    stats: CallStats
    cooldown: Cooldown
    quota_notices: OncePerDay


_services: Services | None = None


def log_call(record: CallRecord) -> None:
    """One structured line per API call: where, how, how long, what it cost; never the key."""
    logger.opt(lazy=True).info("{}", lambda: call_line(record))


def call_line(record: CallRecord) -> str:
    usage = record.usage
    ttft = f"{record.first_token_s:.3f}" if record.first_token_s is not None else "-"
    return (
        f"glm call conv={record.conversation or '-'} model={record.model} mode={record.mode}"
        f" ok={str(record.ok).lower()} attempts={record.attempts} status={record.status or '-'}"
        f" code={record.code or '-'} error={record.error or '-'} ttft_s={ttft}"
        f" total_s={record.total_s:.3f} prompt_tokens={usage.prompt_tokens}"
        f" completion_tokens={usage.completion_tokens} key={record.key or '-'}"
        + (f" rested={','.join(record.rested_keys)}" if record.rested_keys else "")
    )


async def open_services(config: Config) -> Services:
    """Open the store and the HTTP client; log one clear line if no key is set."""
    global _services
    keys, malformed = config.usable_keys()
    for key in malformed:
        logger.error(
            f"glm-chat: GLM_API_KEY entry {key_label(key)} is not 'id.secret' and is not used;"
            " copy the whole key from the BigModel console, or set GLM_AUTH=key for a raw key."
        )
    if not keys:
        logger.warning(
            "glm-chat: GLM_API_KEY is not set; the bot runs but only answers that it is not"
            " configured. Put GLM_API_KEY=<id.secret> in .env.prod or the environment."
        )
    store = await ContextStore.open(config.glm_db_path)
    stats = CallStats()

    def on_call(record: CallRecord) -> None:
        log_call(record)
        stats.record(record)

    client = GLMClient(
        KeyPool(keys, config.glm_auth) if keys else None,
        base_url=config.glm_base_url,
        timeout=config.glm_timeout,
        max_retries=config.glm_max_retries,
        max_concurrency=config.glm_max_concurrency,
        on_call=on_call,
    )
    settings = ChatSettings(
        system_prompt=config.glm_system_prompt,
        model=config.glm_model,
        vision_model=config.glm_vision_model,
        call_mode=config.glm_call_mode,
        history_turns=config.glm_history_turns,
        context_tokens=config.glm_context_tokens,
        thinking=config.glm_thinking,
    )
    _services = Services(
        config,
        ChatService(store, client, settings),
        stats,
        Cooldown(),
        OncePerDay(),
    )
    logger.info(
        f"glm-chat ready: model={settings.model} mode={settings.call_mode}"
        f" db={config.glm_db_path} keys={len(keys)}"
    )
    return _services


async def close_services() -> None:
    global _services
    if _services is not None:
        chat, _services = _services.chat, None
        await chat.client.aclose()
        await chat.store.close()


def get_services() -> Services:
    """The running services (a NoneBot dependency for the matchers)."""
    if _services is None:
        raise RuntimeError("glm-chat is not started yet")
    return _services
