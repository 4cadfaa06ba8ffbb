"""glm-chat: talk to Zhipu AI's GLM models from QQ groups and private chats."""

from nonebot import get_driver
from nonebot.plugin import PluginMetadata

from .config import Config

__plugin_meta__ = PluginMetadata(
    name="GLM 聊天",
    description=(
        "在QQ群里@机器人或私聊，与智谱 GLM 大模型对话；群内共享上下文，存于 SQLite 或 PostgreSQL"
    ),
    usage="群里@我或回复我的消息提问；私聊直接发消息。/glm help 查看命令。",
    type="application",
    homepage="https://github.com/glm-chat/glm-chat",
    config=Config,
    supported_adapters={"~onebot.v11"},
)


def _inside_nonebot() -> bool:
    """Whether NoneBot is initialised: a tool such as ``python -m
    nonebot_plugin_glm_chat.memory.copy`` imports the package without it, and needs none of
    the bot's parts."""
    try:
        get_driver()
    except ValueError:
        return False
    return True


if _inside_nonebot():
    from . import wiring as wiring
