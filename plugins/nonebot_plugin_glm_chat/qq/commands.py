"""``/glm <subcommand>`` and its alias ``/重置对话``: a table of subcommands, each with who may
run it. A command runs in its turn in the chat's queue (see ``intake``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum

from nonebot.adapters.onebot.v11 import GroupMessageEvent, MessageEvent
from nonebot.log import logger

from ..chat.service import persona_problem, week_start
from ..chat.stats import WindowSummary
from ..console import login_link
from ..memory.models import ChatOptions
from ..runtime import Services, get_services
from .answer import over_limit
from .delivery import Outbox
from .drawing import DRAWING, NO_PROMPT, draw_and_send
from .events import chat_of, conversation_of, is_admin, is_exempt, is_superuser

REFUSAL = "只有群主、管理员或机器人主人可以这样做。"
UNEXPECTED_ERROR = "出了点意外，这条命令没有完成，请稍后再试。"
SUPERUSER_REFUSAL = "只有机器人主人可以这样做。"


class Reach(Enum):
    """What a subcommand touches: where it runs in a personal-mode group's queue."""

    OWN = "own"  # the asker's own conversation, or nothing: in the asker's lane
    CHAT_WHEN_SET = "chat when set"  # shows (own lane); with an argument changes the chat
    CHAT = "chat"  # the whole chat: after every member's answer in flight


class Role(Enum):
    """Who may run a subcommand."""

    ANYONE = "anyone"
    ADMIN = "admin"  # group owner/admin or SUPERUSER; in private chat, the user
    SUPERUSER = "superuser"


@dataclass(frozen=True)
class Request:
    """A subcommand call: who asked, where, with what argument."""

    event: MessageEvent
    services: Services
    argument: str
    heard_until: int | None = None  # the group's background before the command
    outbox: Outbox | None = None  # for a subcommand that sends more than its reply

    @property
    def chat(self) -> str:
        return chat_of(self.event)

    async def options(self) -> ChatOptions:
        return await self.services.chat.options(self.chat)

    async def conversation(self) -> str:
        return conversation_of(self.event, (await self.options()).personal)[0]

    async def update(self, **changes: object) -> ChatOptions:
        return await self.services.chat.update_options(self.chat, **changes)


Handler = Callable[[Request], Awaitable[str]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str
    role: Role  # who may run it at all
    change_role: Role | None = None  # with an argument, who may (None: same as role)
    run: Handler | None = None
    reach: Reach = Reach.OWN


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(
    name: str,
    usage: str,
    summary: str,
    role: Role = Role.ANYONE,
    change_role: Role | None = None,
    *,
    reach: Reach = Reach.OWN,
):
    """Register ``run`` as ``/glm <name>``."""

    def register(run: Handler) -> Handler:
        SUBCOMMANDS[name] = Subcommand(name, usage, summary, role, change_role, run, reach)
        return run

    return register


def allowed(role: Role, event: MessageEvent) -> bool:
    if role is Role.ANYONE:
        return True
    if role is Role.ADMIN:
        return is_admin(event)
    return is_superuser(event)


def _on_off(argument: str) -> bool | None:
    return {"on": True, "开": True, "off": False, "关": False}.get(argument.lower())


@subcommand(
    "reset",
    "/glm reset [all]",
    "清空本会话的上下文（别名 /重置对话；全群共用上下文时需管理员）",
    Role.ANYONE,
)
async def _reset(request: Request) -> str:
    # Shared context: admins only. Personal mode: everyone their own; admins "all" for everyone.
    options = await request.options()
    everyone = request.argument.lower() == "all"
    if (everyone or not options.personal) and not allowed(Role.ADMIN, request.event):
        return REFUSAL
    chat = request.services.chat
    until = request.heard_until
    if everyone:
        removed = await chat.reset(request.chat, with_members=True, heard_until=until)
    else:
        removed = await chat.reset(await request.conversation(), heard_until=until)
    return f"上下文已清空（忘掉了 {removed} 轮对话）。" if removed else "上下文本来就是空的。"


@subcommand("status", "/glm status", "查看模型、记住的对话、摘要、工具和旁听")
async def _status(request: Request) -> str:
    services = request.services
    status = await services.chat.status(await request.conversation(), request.chat)
    lines = [
        f"模型：{status.model}（{status.call_mode} 模式）",
        f"已记住 {status.turns} 轮对话，最近的上下文约 {status.tokens} tokens",
    ]
    summary = status.summary
    if summary is not None and summary.text:
        lines.append(f"长期记忆：有摘要（{len(summary.text)} 字，概括了更早的 {summary.turns} 轮）")
    elif services.chat.summarizer is not None:
        lines.append("长期记忆：还没有摘要（对话超出记忆窗口后会自动写）")
    else:
        lines.append("长期记忆：关闭（GLM_SUMMARY=off）")
    lines.append(f"工具：{await _tools_state(request)}")
    if isinstance(request.event, GroupMessageEvent):
        lines.append(await _listening_line(request))
    return "\n".join(lines)


async def _listening_line(request: Request) -> str:
    options = await request.options()
    reading = request.services.reading
    if not reading.on:
        return "旁听：关闭（GLM_BACKGROUND_MESSAGES=0）"
    if not options.listen:
        return "旁听：关闭（/glm listen on 开启）"
    kept = await reading.count(request.chat)
    chime = f"，插话概率 {options.chime}%" if options.chime else ""
    return f"旁听：开启，记着最近 {kept} 条群消息{chime}"


@subcommand(
    "persona",
    "/glm persona [内容|clear]",
    "查看或设置人设（系统提示词）",
    Role.ANYONE,
    change_role=Role.ADMIN,
    reach=Reach.CHAT_WHEN_SET,
)
async def _persona(request: Request) -> str:
    argument = request.argument
    if not argument:
        persona = (await request.options()).persona
        default = request.services.chat.settings.system_prompt
        return f"当前人设：{persona}" if persona else f"当前人设（默认）：{default}"
    if argument.lower() == "clear":
        await request.update(persona=None)
        return "人设已恢复默认。"
    if problem := persona_problem(argument):
        return problem
    await request.update(persona=argument)
    return "人设已更新，之后的对话都会用它。"


@subcommand(
    "model",
    "/glm model [模型名|default]",
    "查看或切换本会话的模型",
    Role.ANYONE,
    change_role=Role.SUPERUSER,
    reach=Reach.CHAT_WHEN_SET,
)
async def _model(request: Request) -> str:
    chat = request.services.chat
    if not request.argument:
        return f"当前模型：{chat.model_for(await request.options())}"
    name = request.argument.split()[0]
    if name.lower() == "default":
        await request.update(model=None)
        return f"模型已恢复默认：{chat.settings.model}"
    await request.update(model=name)
    return f"模型已切换为 {name}。（名称不对的话，下次提问时会提示。）"


@subcommand(
    "mode",
    "/glm mode shared|personal",
    "本群共用一个上下文，或每人一个",
    Role.ADMIN,
    reach=Reach.CHAT_WHEN_SET,
)
async def _mode(request: Request) -> str:
    if not isinstance(request.event, GroupMessageEvent):
        return "私聊本来就是你自己的上下文。"
    choice = request.argument.lower()
    if choice not in ("shared", "personal"):
        current = "personal" if (await request.options()).personal else "shared"
        return f"当前模式：{current}。用 /glm mode shared 或 /glm mode personal 切换。"
    await request.update(personal=choice == "personal")
    if choice == "personal":
        return "已切换为每人一个上下文：每位成员只看到自己和我的对话。"
    return "已切换为全群共用一个上下文。"


@subcommand("on", "/glm on", "在本群开启回答", Role.ADMIN, reach=Reach.CHAT)
async def _on(request: Request) -> str:
    await request.update(enabled=True)
    return "好的，我回来了。"


@subcommand("off", "/glm off", "在本群关闭回答（命令仍可用）", Role.ADMIN, reach=Reach.CHAT)
async def _off(request: Request) -> str:
    await request.update(enabled=False)
    return "好的，我先不说话了，/glm on 可以叫我回来。"


@subcommand(
    "search",
    "/glm search on|off",
    "开关联网搜索，回答后列出来源",
    Role.ADMIN,
    reach=Reach.CHAT_WHEN_SET,
)
async def _search(request: Request) -> str:
    choice = _on_off(request.argument)
    if choice is None:
        state = "开" if (await request.options()).web_search else "关"
        return f"联网搜索现在是{state}的。用 /glm search on 或 /glm search off 切换。"
    await request.update(web_search=choice)
    return "联网搜索已开启，回答会附上来源。" if choice else "联网搜索已关闭。"


@subcommand(
    "tools",
    "/glm tools on|off",
    "开关工具：画图、查时间等（以及机器人主人配置的 MCP 工具）",
    Role.ANYONE,
    Role.ADMIN,
    reach=Reach.CHAT_WHEN_SET,
)
async def _tools(request: Request) -> str:
    choice = _on_off(request.argument)
    if choice is None:
        return f"工具：{await _tools_state(request)}。用 /glm tools on 或 /glm tools off 切换。"
    await request.update(tools=choice)
    return "工具已开启：需要时我会画图、查时间等。" if choice else "工具已关闭，我只用文字回答。"


async def _tools_state(request: Request) -> str:
    """``开启（tool、tool）`` or ``关闭``: whether the chat offers tools, and which."""
    chat = request.services.chat
    if not chat.tools_on(await request.options()):
        return "关闭"
    names = "、".join(tool.name for tool in chat.tools()) if chat.tools else ""
    return f"开启（{names}）" if names else "开启"


@subcommand("draw", "/glm draw <描述>", "按描述画一张图", Role.ANYONE)
async def _draw(request: Request) -> str:
    prompt = request.argument.strip()
    if not prompt:
        return NO_PROMPT
    event, services = request.event, request.services
    if not (await request.options()).enabled:
        return ""  # the chat is off: a drawing is an answer too
    refusal = None if is_exempt(event) else await over_limit(services, event, request.chat)
    if refusal is not None:
        return refusal  # "": already told, stay quiet
    assert request.outbox is not None
    services.drawings.start(draw_and_send(services.images, request.outbox, event, prompt))
    return DRAWING


@subcommand(
    "listen",
    "/glm listen on|off",
    "旁听群聊：提问时带上最近没有@我的群消息",
    Role.ADMIN,
    reach=Reach.CHAT_WHEN_SET,
)
async def _listen(request: Request) -> str:
    if not isinstance(request.event, GroupMessageEvent):
        return GROUP_ONLY_NOTE
    reading = request.services.reading
    choice = _on_off(request.argument)
    if choice is None:
        state = "开" if (await request.options()).listen else "关"
        return f"旁听现在是{state}的。用 /glm listen on 或 /glm listen off 切换。"
    if not reading.on:
        return "机器人主人把 GLM_BACKGROUND_MESSAGES 设成了 0，旁听在所有群都关闭。"
    kept = 0 if choice else await reading.count(request.chat)
    await request.update(listen=choice)
    if choice:
        minutes = request.services.config.glm_background_minutes
        return (
            f"好的，我会旁听群聊：提问时带上最近 {reading.keep} 条没有@我的消息"
            f"（只保留 {minutes} 分钟以内的）。"
        )
    return f"好的，我不再旁听，记下的 {kept} 条群消息已经删除。"


@subcommand(
    "chime",
    "/glm chime <0-100>",
    "没人@我时主动插话的概率（百分比，默认 0）",
    Role.ADMIN,
    reach=Reach.CHAT_WHEN_SET,
)
async def _chime(request: Request) -> str:
    if not isinstance(request.event, GroupMessageEvent):
        return GROUP_ONLY_NOTE
    gap = request.services.config.glm_chime_gap
    argument = request.argument.removesuffix("%").strip()
    if not argument:
        percent = (await request.options()).chime
        return f"插话概率现在是 {percent}%。用 /glm chime <0-100> 设置，每 {gap:g} 秒最多一次。"
    if not argument.isdecimal() or not argument.isascii() or int(argument) > 100:
        return "请给一个 0 到 100 的整数，例如 /glm chime 5。"
    percent = int(argument)
    options = await request.update(chime=percent)
    if percent == 0:
        return "好的，我不再主动插话。"
    note = (
        ""
        if options.listen
        else "（注意：旁听关着，我听不到群聊，不会插话；/glm listen on 开启。）"
    )
    return (
        f"好的，没人@我时，每条群消息有 {percent}% 的机会让我插一句，每 {gap:g} 秒最多一次。{note}"
    )


GROUP_ONLY_NOTE = "这个命令只在群里有用。"


@subcommand("usage", "/glm usage", "今天和近 7 天用掉的 token")
async def _usage(request: Request) -> str:
    store = request.services.chat.store
    today = date.today()
    since = week_start(today)
    private = not isinstance(request.event, GroupMessageEvent)
    if private and is_superuser(request.event) and request.argument.lower() != "here":
        rows = await store.usage_since(since)
        totals: dict[str, list[int]] = {}
        for scope, day, tokens in rows:
            entry = totals.setdefault(scope, [0, 0])
            entry[0] += tokens if day == today.isoformat() else 0
            entry[1] += tokens
        if not totals:
            return "近 7 天还没有用量。"
        lines = ["近 7 天用量（今天 / 7 天，tokens）："]
        for scope, (day_total, week_total) in sorted(totals.items(), key=lambda i: -i[1][1]):
            lines.append(f"{scope}：{day_total} / {week_total}")
        return "\n".join(lines[:21])
    day_total, week = await request.services.chat.recent_tokens(request.chat)
    limit = request.services.config.glm_daily_tokens
    quota = f"（每日上限 {limit}）" if limit else ""
    return f"今天用了 {day_total} tokens{quota}，近 7 天共 {week} tokens。"


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


@subcommand("console", "/glm console", "网页控制台的登录链接（仅私聊）", Role.SUPERUSER)
async def _console(request: Request) -> str:
    if isinstance(request.event, GroupMessageEvent):
        return CONSOLE_IN_GROUP
    link = login_link()
    if link is None:
        return CONSOLE_OFF
    return f"网页控制台：{link}\n链接里带着访问令牌，请不要转发。"


CONSOLE_IN_GROUP = "登录链接带着访问令牌，请私聊我 /glm console。"
CONSOLE_OFF = "网页控制台没有开启（GLM_CONSOLE=off，或驱动器没有 HTTP 服务）。"


@subcommand("help", "/glm help", "显示这份帮助")
async def _help(request: Request) -> str:
    group = isinstance(request.event, GroupMessageEvent)
    how = "群里@我或回复我的消息即可提问。" if group else "直接发消息即可提问。"
    lines = [how + "可用命令："]
    for command in SUBCOMMANDS.values():
        if command.name in (PRIVATE_ONLY if group else GROUP_ONLY):
            continue
        if allowed(command.change_role or command.role, request.event):
            lines.append(f"{command.usage} — {command.summary}")
        elif allowed(command.role, request.event):  # may look, not change
            who = _WHO_CHANGES[command.change_role or command.role]
            lines.append(f"/glm {command.name} — {command.summary}（修改需{who}）")
    return "\n".join(lines)


GROUP_ONLY = frozenset(
    {"mode", "on", "off", "listen", "chime"}
)  # left out of the help in private chat
PRIVATE_ONLY = frozenset({"console"})  # left out of the help in a group
_WHO_CHANGES = {Role.ADMIN: "管理员", Role.SUPERUSER: "机器人主人", Role.ANYONE: ""}


def runs_on_own(name: str, argument: str) -> bool:
    """Whether ``/glm name argument`` leaves the rest of the chat alone (in personal mode it
    then runs in the asker's lane, without waiting for other members' answers)."""
    command = SUBCOMMANDS.get(name)
    if command is None:  # the help
        return True
    if argument.lower() == "all" or command.reach is Reach.CHAT:
        return False
    return command.reach is Reach.OWN or not argument


async def run_subcommand(
    event: MessageEvent,
    name: str,
    argument: str,
    heard_until: int | None = None,
    outbox: Outbox | None = None,
) -> str:
    """The reply to ``/glm name argument``: a refusal, the result, or the help ("": the
    subcommand has nothing to say)."""
    command = SUBCOMMANDS.get(name.lower())
    if command is None:
        command, argument = SUBCOMMANDS["help"], ""
    role = command.change_role if argument and command.change_role else command.role
    if not allowed(role, event):
        return SUPERUSER_REFUSAL if role is Role.SUPERUSER else REFUSAL
    assert command.run is not None
    return await command.run(Request(event, get_services(), argument, heard_until, outbox))


async def run_command(
    outbox: Outbox,
    event: MessageEvent,
    name: str,
    argument: str,
    heard_until: int | None = None,
) -> None:
    """Run ``/glm name argument`` and reply with the result, quoting the command."""
    try:
        reply = await run_subcommand(event, name, argument, heard_until, outbox)
    except Exception as error:
        logger.opt(exception=error).error(f"glm-chat: /glm {name} failed")
        reply = UNEXPECTED_ERROR
    if reply:
        await outbox.say(event, reply)
