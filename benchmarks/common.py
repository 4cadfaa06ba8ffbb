"""What the benchmarks share: the fake GLM server, bots run as users run them, statistics."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from tests.support.bot_process import RunningBot
from tests.support.fake_glm import FakeGLM, served

KEY_ID, KEY_SECRET = "benchkeyid", "bench-secret"
SELF_ID = 900002
TOKEN = "bench-token"
ECHO_BOT = "benchmarks/echo_bot/bot.py"
# What a group says among itself (not to the bot).
CHATTER = (
    "哈哈哈哈哈",
    "今天食堂的饭也太难吃了吧",
    "有人晚上一起打游戏吗？五缺一",
    "明天几点开会来着，我又忘了",
    "刚下班，地铁上挤死了",
    "这个视频笑死我了，你们快看",
    "周末去爬山的人报个名，我统计一下人数",
    "楼上说得对",
    "我觉得还是先把作业写完再说吧，不然周一又要熬夜",
    "+1",
    "有没有人知道这个报错是什么意思：ModuleNotFoundError",
    "外面下大雨了，大家回家注意安全",
    "收到",
    "新出的那部电影评分怎么样？值不值得去电影院看",
    "晚安各位",
)


@contextmanager
def fake_glm(latency: float = 0.0, max_in_flight: int = 0) -> Iterator[tuple[FakeGLM, str]]:
    fake = FakeGLM(keys={KEY_ID: KEY_SECRET}, latency=latency, max_in_flight=max_in_flight)
    with served(fake) as base_url:
        yield fake, base_url


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="glm-bench-") as name:
        yield Path(name)


def bot(
    base_url: str, folder: Path, script: str = "bot.py", *, self_id: int = SELF_ID, **settings: str
) -> RunningBot:
    """The bot (or the echo bot) on a fresh database in ``folder``, logging warnings only."""
    env = {
        "GLM_API_KEY": f"{KEY_ID}.{KEY_SECRET}",
        "GLM_BASE_URL": base_url,
        "GLM_DB_PATH": str(folder / "glm.db"),
        "ONEBOT_ACCESS_TOKEN": TOKEN,
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    return RunningBot(
        env,
        folder / f"{Path(script).parent.name or 'bot'}.log",
        self_id=self_id,
        token=TOKEN,
        script=script,
    )


def summary(values: list[float], unit: str = "", scale: float = 1.0) -> str:
    """``median (min–max, n=N)``."""
    scaled = [v * scale for v in values]
    return (
        f"{statistics.median(scaled):.3g}{unit} "
        f"(min {min(scaled):.3g}, max {max(scaled):.3g}, n={len(scaled)})"
    )


def quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def machine() -> str:
    cores = os.cpu_count()
    return f"{date.today()}, {platform.machine()} {cores} cores, Python {platform.python_version()}"
