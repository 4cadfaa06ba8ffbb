"""The plugin inside a running NoneBot: settings read at load, services opened on startup and
closed on shutdown, the matchers registered."""

from nonebot import get_driver

from .console import close_console, install, open_console
from .runtime import close_services, open_services
from .startup import load_config, stop_on_store_error

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
