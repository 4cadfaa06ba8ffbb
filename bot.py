"""Start the bot: ``python bot.py`` (or ``nb run``)."""

import gc
import sys

import nonebot
from nonebot.adapters.onebot.v11 import Adapter as OneBotV11Adapter
from nonebot.config import Env
from nonebot.log import default_filter, default_format, logger, logger_id

# Settings files, later ones winning (the environment wins over all of them): .env picks the
# ENVIRONMENT, .env.{ENVIRONMENT} is the committed template, .env.local (git-ignored) holds
# this machine's secrets.
nonebot.init(_env_file=(".env", f".env.{Env().environment}", ".env.local"))

driver = nonebot.get_driver()

# NoneBot's console handler takes records of every level and drops those below LOG_LEVEL only
# after building each (its time, its caller's frame, its message): about ten per message, most
# of them DEBUG. The same handler at LOG_LEVEL lets loguru drop them before building anything;
# what is printed does not change.
logger.remove(logger_id)
logger.add(
    sys.stdout,
    level=driver.config.log_level,
    diagnose=False,
    filter=default_filter,
    format=default_format,
)
driver.register_adapter(OneBotV11Adapter)

nonebot.load_from_toml("pyproject.toml")


@driver.on_startup  # after the plugins' own startup (registered first)
async def _freeze_what_startup_made() -> None:
    """Take what the bot holds once started out of the garbage collector's sight: its full
    collections then look only at what messages made since, not at the hundreds of thousands
    of objects NoneBot and the plugins keep for good (about a tenth of the CPU per answered
    message here: see README, Benchmarks)."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    nonebot.run()
