"""glm-chat: talk to Zhipu AI's GLM models from QQ groups and private chats."""

from nonebot import get_driver
from nonebot.plugin import PluginMetadata

from .config import Config
from .console import close_console, install, open_console
from .runtime import close_services, open_services
from .startup import load_config, stop_on_store_error

__plugin_meta__ = PluginMetadata(
    name="GLM 聊天",
    description="在QQ群里@机器人或私聊，与智谱 GLM 大模型对话；群内共享上下文，存于 SQLite",
    usage="群里@我或回复我的消息提问；私聊直接发消息。/glm help 查看命令。",
    type="application",
    homepage="https://github.com/glm-chat/glm-chat",
    config=Config,
    supported_adapters={"~onebot.v11"},
)

plugin_config = load_config()  # a bad setting stops the start here, with one line
_driver = get_driver()
_console = install(plugin_config)  # only where the driver serves HTTP


@_driver.on_startup
async def _start() -> None:
    with stop_on_store_error():
        await open_services(plugin_config)
        if _console:
            open_console(plugin_config)


@_driver.on_shutdown
async def _stop() -> None:
    close_console()
    await close_services()


from .qq import intake as intake  # noqa: E402  (the matcher and preprocessor register on import)
