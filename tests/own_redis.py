"""A redis-server (or Sentinel) of a test's own, on a free port: for tests that kill,
restart or reconfigure a server, which must never happen to the shared one."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """``redis-server`` with nothing saved but what ``extra`` asks for (``--appendonly yes``...)."""

    def __init__(self, directory: Path, *extra: str, config: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.extra = extra
        self.config = config  # a config file's text, for modes that need one (Sentinel)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        argv = [binary]
        if self.config is not None:
            path = self.directory / f"redis-{self.port}.conf"
            path.write_text(self.config)
            argv.append(str(path))
        argv += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.directory),
                 *self.extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"own redis-server on port {self.port} did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
