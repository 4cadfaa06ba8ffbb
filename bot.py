"""Start the bot: ``python bot.py`` (or ``nb run``)."""

import nonebot
from nonebot.adapters.onebot.v11 import Adapter as OneBotV11Adapter
from nonebot.config import Env

# Settings files, later ones winning (the environment wins over all of them): .env picks the
# ENVIRONMENT, .env.{ENVIRONMENT} is the committed template, .env.local (git-ignored) holds
# this machine's secrets.
nonebot.init(_env_file=(".env", f".env.{Env().environment}", ".env.local"))

driver = nonebot.get_driver()
driver.register_adapter(OneBotV11Adapter)

nonebot.load_from_toml("pyproject.toml")

if __name__ == "__main__":
    nonebot.run()
