"""The services the matchers use: opened on NoneBot's startup, closed on shutdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nonebot.log import logger

from .chat.chime import ChimeGate
from .chat.limits import Cooldown, OncePerDay
from .chat.queue import ChatQueues
from .chat.reading import ReadingAlong
from .chat.service import ChatService, ChatSettings
from .chat.stats import CallStats
from .chat.summary import Summarizer
from .config import Config
from .glm.auth import KeyPool
from .glm.client import CallRecord, GLMClient
from .glm.images import ImageMaker
from .tools.builtin import builtin_tools
from .tools.mcp import INSTALL_MCP, McpHub, mcp_installed, parse_servers
from .tools.web_search import web_search_tool

if TYPE_CHECKING:
    from .shared.cap import SharedCap
    from .shared.limits import SharedCooldown, SharedNotices
from .memory.store import open_store
from .qq.delivery import RecentIds
from .qq.drawing import Drawings
from .startup import keys_to_use, report_ready


@dataclass(frozen=True)
class Services:
    """What the matchers need while the bot runs."""

    config: Config
    chat: ChatService
    stats: CallStats
    queues: ChatQueues
    cooldown: Cooldown | SharedCooldown
    quota_notices: OncePerDay | SharedNotices  # chats told today their token quota is spent
    private_notices: OncePerDay | SharedNotices  # users told today private chat is closed
    sent: RecentIds  # ids of the messages the bot sent: a reply to one is addressed to it
    chime: ChimeGate
    images: ImageMaker  # /glm draw and the draw_image tool
    drawings: Drawings  # /glm draw's pictures under way
    mcp: McpHub | None  # the MCP servers of GLM_MCP_SERVERS, if any

    @property
    def reading(self) -> ReadingAlong:
        assert self.chat.reading is not None
        return self.chat.reading


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
        + (f" purpose={record.purpose}" if record.purpose != "answer" else "")
    )


@dataclass(frozen=True)
class _Sharing:
    """What several processes share through Redis, or keep each on its own without it."""

    cooldown: Cooldown | SharedCooldown
    quota_notices: OncePerDay | SharedNotices
    private_notices: OncePerDay | SharedNotices
    cap: SharedCap | None = None


async def _open_sharing(config: Config, pool: KeyPool | None) -> _Sharing:
    """Through Redis with ``GLM_REDIS_URL`` (the redis package is only imported then)."""
    if not config.glm_redis_url:
        return _Sharing(Cooldown(), OncePerDay(), OncePerDay())
    from .shared.cap import SharedCap
    from .shared.limits import SharedCooldown, SharedNotices
    from .shared.link import RedisLink
    from .shared.rests import SharedRests

    link = RedisLink(config.glm_redis_url)
    await link.start()
    cap = SharedCap(link, config.glm_max_concurrency)
    cap.start()
    if pool is not None:
        await SharedRests(link, pool).start()
    return _Sharing(
        SharedCooldown(link, Cooldown()),
        SharedNotices(link, OncePerDay(), "quota"),
        SharedNotices(link, OncePerDay(), "private"),
        cap,
    )


def _start_mcp(config: Config) -> McpHub | None:
    """The MCP servers, starting in the background (the bot answers meanwhile)."""
    if not config.glm_mcp_servers:
        return None
    if not mcp_installed():
        logger.error(
            "glm-chat: GLM_MCP_SERVERS is set, but the mcp package is not installed:"
            f" {INSTALL_MCP}; the bot runs without MCP tools"
        )
        return None
    hub = McpHub(config.glm_db_path.parent)
    hub.start_soon(parse_servers(config.glm_mcp_servers))
    return hub


async def open_services(config: Config) -> Services:
    """Open the store and the HTTP client; log one clear line if no key is set."""
    global _services
    keys = keys_to_use(config)  # logs what is wrong with GLM_API_KEY
    store = await open_store(config.glm_db_path, config.glm_db_url)
    stats = CallStats()

    def on_call(record: CallRecord) -> None:
        log_call(record)
        stats.record(record)

    pool = KeyPool(keys, config.glm_auth) if keys else None
    sharing = await _open_sharing(config, pool)
    client = GLMClient(
        pool,
        base_url=config.glm_base_url,
        timeout=config.glm_timeout,
        max_retries=config.glm_max_retries,
        max_concurrency=config.glm_max_concurrency,
        on_call=on_call,
        shared=sharing.cap,
    )
    settings = ChatSettings(
        system_prompt=config.glm_system_prompt,
        model=config.glm_model,
        vision_model=config.glm_vision_model,
        call_mode=config.glm_call_mode,
        history_turns=config.glm_history_turns,
        context_tokens=config.glm_context_tokens,
        thinking=config.glm_thinking,
        tools=config.glm_tools == "on",
        tool_rounds=config.glm_tool_rounds,
    )
    reading = ReadingAlong(
        store.background,
        keep=config.glm_background_messages,
        minutes=config.glm_background_minutes,
    )
    await reading.start()
    summarizer = None
    if config.glm_summary == "on":
        summarizer = Summarizer(
            store,
            client,
            model=config.glm_summary_model or config.glm_model,
            mode=config.glm_call_mode,
            window=config.glm_history_turns,
            context_tokens=config.glm_context_tokens,
        )
    images = ImageMaker(client, config.glm_image_model)
    own_tools = builtin_tools(images)
    mcp = _start_mcp(config)
    chat = ChatService(
        store,
        client,
        settings,
        reading=reading,
        summarizer=summarizer,
        tools=lambda: [*own_tools, *(mcp.tools() if mcp else [])],
        search_tool=web_search_tool(client),
    )

    async def personal(chat_key: str) -> bool:
        return (await chat.options(chat_key)).personal

    _services = Services(
        config,
        chat,
        stats,
        ChatQueues(personal),
        sharing.cooldown,
        sharing.quota_notices,
        sharing.private_notices,
        RecentIds(),
        ChimeGate(config.glm_chime_gap),
        images,
        Drawings(),
        mcp,
    )
    report_ready(config)
    return _services


async def close_services() -> None:
    """Stop queued and running work first, then close the HTTP client and the database."""
    global _services
    if _services is not None:
        services, _services = _services, None
        await services.queues.close()
        await services.drawings.close()
        if services.mcp is not None:
            await services.mcp.close()
        if services.chat.summarizer is not None:
            await services.chat.summarizer.close()
        await services.reading.close()
        await services.images.aclose()
        await services.chat.client.aclose()
        if services.chat.client.shared is not None:
            await services.chat.client.shared.link.close()
        await services.chat.store.close()


def get_services() -> Services:
    """The running services (a NoneBot dependency for the matchers)."""
    if _services is None:
        raise RuntimeError("glm-chat is not started yet")
    return _services


def running_services() -> Services | None:
    """The services while the bot runs, else None (before startup, after shutdown)."""
    return _services
