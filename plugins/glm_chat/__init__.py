"""glm-chat: talk to Zhipu AI's GLM models from QQ groups and private chats."""

from nonebot import get_driver, get_plugin_config
from nonebot.plugin import PluginMetadata

from .config import Config
from .runtime import close_services, open_services

__plugin_meta__ = PluginMetadata(
    name="GLM 聊天",
    description="在QQ群里@机器人或私聊，与智谱 GLM 大模型对话；群内共享上下文，存于 SQLite",
    usage="群里@我或回复我的消息提问；私聊直接发消息。/glm help 查看命令。",
    type="application",
    homepage="https://github.com/glm-chat/glm-chat",
    config=Config,
    supported_adapters={"~onebot.v11"},
)

plugin_config = get_plugin_config(Config)
_driver = get_driver()


@_driver.on_startup
async def _start() -> None:
    await open_services(plugin_config)


@_driver.on_shutdown
async def _stop() -> None:
    await close_services()


from .qq import commands as commands  # noqa: E402  (matchers register on import)
from .qq import handlers as handlers  # noqa: E402
