"""``python bot.py`` as a subprocess, the way a user runs it, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.onebot_client import OneBotClient

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BotProcess:
    """Starts and stops the bot; its output goes to ``log_path``."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        script: str = "bot.py",
        *,
        cwd: Path = ROOT,
        python: str = sys.executable,
    ) -> None:
        self.script = script
        self.cwd = cwd
        self.python = python
        self.port = free_port()
        self.log_path = log_path
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("GLM_", "ONEBOT_"))}
        self.env = {**inherited, "HOST": "127.0.0.1", "PORT": str(self.port), **env}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/onebot/v11/ws"

    def start(self) -> BotProcess:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.python, self.script],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def run_to_exit(self, timeout: float = 60.0) -> int:
        """Start the bot and wait for it to exit by itself (e.g. refusing a setting): its exit
        code; what it printed is in ``log()``. A bot still running after ``timeout`` is killed."""
        self.start()
        assert self._process is not None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the bot did not exit:\n{self.log()[-3000:]}") from None

    def stop(self, timeout: float = 20.0) -> int:
        """Ask the bot to shut down (Ctrl+C) and wait; kill it if it does not."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    async def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """``kill -TERM``, as a service manager stops the bot: ``(exit code, seconds taken)``.

        The test's event loop keeps running meanwhile, so its QQ client can answer the bot.
        """
        process = self._process
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        return code, time.monotonic() - started

    async def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Until the bot's log contains ``text`` (the test's event loop keeps running)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the log:\n{log[-3000:]}")
            await asyncio.sleep(0.05)
        return log

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        """``kill -9``: no shutdown hooks run."""
        assert self._process is not None
        self._process.kill()
        self._process.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_bytes(self) -> int:
        """Resident memory now (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")


class RunningBot:
    """``async with RunningBot(env, log) as qq``: a started bot and a QQ client connected to it.

    Leaving the block stops the bot with Ctrl+C and checks that it exited cleanly.
    """

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        self_id: int,
        token: str,
        script: str = "bot.py",
        cwd: Path = ROOT,
        python: str = sys.executable,
    ) -> None:
        self.process = BotProcess(env, log_path, script, cwd=cwd, python=python)
        self.qq = OneBotClient("", self_id, token)

    async def __aenter__(self) -> OneBotClient:
        self.process.start()
        self.qq.url = self.process.ws_url
        try:
            await self.qq.connect()
        except BaseException:
            self.process.stop()
            raise
        return self.qq

    async def __aexit__(self, *exc: object) -> None:
        await self.qq.close()
        if self.process.running:
            code = self.process.stop()
            assert code == 0, f"bot exited with {code}:\n{self.process.log()[-3000:]}"
