"""What sending a drawing as bytes costs the bot, against handing QQ the platform's URL.

CogView answers with a URL; the bot may pass it on (QQ's client then fetches it) or fetch the
picture and send its bytes (base64 in the OneBot message). Measured here: the download over
loopback (wall time and the bot's CPU) and building the message QQ receives, for a picture of
CogView's size (1024x1024 PNG, about 1.5 MB), against the drawing itself (10 to 30 s).

    python -m benchmarks.drawing [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from nonebot.adapters.onebot.v11 import Message, MessageSegment
from nonebot.utils import DataclassEncoder

from benchmarks.common import KEY_ID, KEY_SECRET, fake_glm, machine, summary
from plugins.nonebot_plugin_glm_chat.glm.auth import KeyPool
from plugins.nonebot_plugin_glm_chat.glm.client import GLMClient
from plugins.nonebot_plugin_glm_chat.glm.images import ImageMaker

PICTURE_BYTES = 1_500_000


def wire_size(image: bytes | str) -> tuple[int, float]:
    """The OneBot action's JSON size for a picture message, and the CPU seconds to build it."""
    started = time.process_time()
    message = Message(MessageSegment.image(image))
    body = json.dumps(  # as the adapter encodes an action
        {"action": "send_group_msg", "params": {"group_id": 1, "message": message}},
        cls=DataclassEncoder,
    )
    return len(body), time.process_time() - started


async def main(runs: int) -> None:
    with fake_glm() as (fake, base_url):
        fake.picture = b"\x89PNG\r\n\x1a\n" + os.urandom(PICTURE_BYTES - 8)
        client = GLMClient(KeyPool([f"{KEY_ID}.{KEY_SECRET}"], "jwt"), base_url=base_url)
        maker = ImageMaker(client, "cogview-3-flash")
        walls, cpus, sizes = [], [], []
        try:
            for _ in range(runs):
                url = (await maker.draw("一只猫")).url
                started, cpu = time.perf_counter(), time.process_time()
                data = await maker.download(url)
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu)
                assert data is not None and len(data) == PICTURE_BYTES
                sizes.append(wire_size(data))
        finally:
            await maker.aclose()
            await client.aclose()
    by_url = wire_size(url)
    print(f"drawing: {machine()}, picture {PICTURE_BYTES / 1e6:.1f} MB, {runs} runs")
    print(f"  download over loopback: wall {summary(walls, ' ms', 1000)}")
    print(f"  download: CPU of client and fake server together {summary(cpus, ' ms', 1000)}")
    print(
        f"  message to QQ: bytes {sizes[0][0] / 1e6:.2f} MB, built in"
        f" {summary([cpu for _, cpu in sizes], ' ms', 1000)}; URL {by_url[0]} B"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
