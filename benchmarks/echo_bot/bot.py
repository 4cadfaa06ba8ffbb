"""The baseline for the benchmarks: a NoneBot bot (same driver and adapter) that only echoes.

It answers an @mention or a private message with the same text, quoting it in groups, and does
nothing else: no API call, no storage.
"""

import sys
from pathlib import Path

import nonebot
from nonebot.adapters.onebot.v11 import Adapter as OneBotV11Adapter

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere

nonebot.init(_env_file=("benchmarks/echo_bot/.env.echo",))
nonebot.get_driver().register_adapter(OneBotV11Adapter)
nonebot.load_plugin("benchmarks.echo_bot.echo")

if __name__ == "__main__":
    nonebot.run()
