"""``/glm <subcommand>`` and its aliases: a table of subcommands, each with who may run it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from nonebot import on_command
from nonebot.adapters.onebot.v11 import Bot, Message, MessageEvent
from nonebot.params import Command, CommandArg
from nonebot.typing import T_State

from .events import conversation_of, is_admin, is_superuser, reply_to
from .ordering import in_turn
from .runtime import Services, get_services
from .stats import WindowSummary

REFUSAL = "只有群主、管理员或机器人主人可以这样做。"
SUPERUSER_REFUSAL = "只有机器人主人可以这样做。"


class Role(Enum):
    """Who may run a subcommand."""

    ANYONE = "anyone"
    ADMIN = "admin"  # group owner/admin or SUPERUSER; in private chat, the user
    SUPERUSER = "superuser"


@dataclass(frozen=True)
class Request:
    """A subcommand call: who asked, where, with what argument."""

    bot: Bot
    event: MessageEvent
    services: Services
    argument: str

    @property
    def conversation(self) -> str:
        return conversation_of(self.event)[0]


Handler = Callable[[Request], Awaitable[str]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str
    role: Role
    run: Handler


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, usage: str, summary: str, role: Role = Role.ANYONE):
    """Register ``run`` as ``/glm <name>``."""

    def register(run: Handler) -> Handler:
        SUBCOMMANDS[name] = Subcommand(name, usage, summary, role, run)
        return run

    return register


async def _allowed(role: Role, bot: Bot, event: MessageEvent) -> bool:
    if role is Role.ANYONE:
        return True
    if role is Role.ADMIN:
        return await is_admin(bot, event)
    return await is_superuser(bot, event)


@subcommand("reset", "/glm reset", "清空本会话的上下文（别名 /重置对话）", Role.ADMIN)
async def _reset(request: Request) -> str:
    removed = await request.services.chat.reset(request.conversation)
    return f"上下文已清空（忘掉了 {removed} 轮对话）。" if removed else "上下文本来就是空的。"


@subcommand("status", "/glm status", "查看模型、已记住的轮数和估计的 token 数")
async def _status(request: Request) -> str:
    status = await request.services.chat.status(request.conversation)
    return (
        f"模型：{status.model}（{status.call_mode} 模式）\n"
        f"已记住 {status.turns} 轮对话，最近的上下文约 {status.tokens} tokens"
    )


def _window_lines(title: str, window: WindowSummary) -> list[str]:
    if not window.calls:
        return [f"{title}：还没有调用"]
    lines = [
        f"{title}：调用 {window.calls} 次，成功率 {window.success_rate:.1%}，"
        f"延迟 p50 {window.p50_s:.2f}s / p95 {window.p95_s:.2f}s"
    ]
    if window.errors:
        lines.append("  错误：" + "，".join(f"{code}×{n}" for code, n in window.errors.items()))
    return lines


@subcommand("stats", "/glm stats", "API 调用次数、成功率、延迟和错误", Role.SUPERUSER)
async def _stats(request: Request) -> str:
    today, since_start = request.services.stats.summaries()
    lines = ["API 调用统计", *_window_lines("今天", today), *_window_lines("启动以来", since_start)]
    keys = request.services.chat.client.keys
    resting = keys.resting() if keys is not None else []
    now = time.time()
    for rest in resting:
        minutes = max(1, round((rest.until - now) / 60))
        lines.append(f"休息中的 Key：{rest.label}（{rest.reason}，还剩约 {minutes} 分钟）")
    return "\n".join(lines)


@subcommand("help", "/glm help", "显示这份帮助")
async def _help(request: Request) -> str:
    lines = ["群里@我或回复我的消息即可提问，私聊直接发消息。可用命令："]
    for command in SUBCOMMANDS.values():
        if await _allowed(command.role, request.bot, request.event):
            lines.append(f"{command.usage} — {command.summary}")
    return "\n".join(lines)


async def run_subcommand(bot: Bot, event: MessageEvent, name: str, argument: str) -> str:
    """The reply to ``/glm name argument``: a refusal, the result, or the help."""
    command = SUBCOMMANDS.get(name.lower())
    if command is None:
        command, argument = SUBCOMMANDS["help"], ""
    if not await _allowed(command.role, bot, event):
        return SUPERUSER_REFUSAL if command.role is Role.SUPERUSER else REFUSAL
    return await command.run(Request(bot, event, get_services(), argument))


glm = on_command("glm", aliases={"重置对话"}, priority=20, block=True, force_whitespace=True)


@glm.handle()
async def _glm(
    bot: Bot,
    event: MessageEvent,
    state: T_State,
    command: tuple[str, ...] = Command(),
    args: Message = CommandArg(),
) -> None:
    if command == ("重置对话",):
        name, argument = "reset", ""
    else:
        name, _, argument = args.extract_plain_text().strip().partition(" ")
    async with in_turn(state):
        reply = await run_subcommand(bot, event, name or "help", argument.strip())
    await glm.finish(reply_to(event, reply))
