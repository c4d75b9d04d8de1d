"""A PostgreSQL cluster of a test's own, made with ``initdb`` on a free port: for tests that
crash and restart the server, which must never happen to the shared one at 127.0.0.1:5432.

initdb and postgres refuse to run as root. Run by root (a CI container), the cluster is
made and run as the ``postgres`` user (``runuser``), in a directory under the system's
temporary directory that the user owns; otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .own_redis import free_port

SERVICE_USER = "postgres"


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: on PATH, else the newest of Debian's versions."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def missing_reason() -> str | None:
    """Why an own cluster cannot be made here, or None."""
    if find_bindir() is None:
        return "initdb and pg_ctl are not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root, and there is no {SERVICE_USER!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser is missing"
    return None


class OwnPostgres:
    """``initdb`` once, then ``start``, ``crash`` (``pg_ctl -m immediate stop``), ``start`` again."""

    def __init__(self) -> None:
        bindir = find_bindir()
        assert bindir is not None, missing_reason()
        self.bindir = bindir
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.directory = Path(tempfile.mkdtemp(prefix="celeriac-own-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        if self.as_root:
            user = pwd.getpwnam(SERVICE_USER)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bindir / program), *args]
        if self.as_root:
            argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.directory)
        if done.returncode != 0:
            raise AssertionError(
                f"{program} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.server_log()}")

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text()
        return ""

    def start(self) -> None:
        """Start and wait until it accepts connections (after crash recovery, if it crashed)."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                   "-c max_connections=100 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def crash(self) -> None:
        """Stop at once, as a crash would: no checkpoint, clients cut off; recovery at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.crash()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
