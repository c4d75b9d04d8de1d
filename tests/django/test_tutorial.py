"""docs/django.md's tutorial, run as written: ``startproject`` to a task that ran (Django 6).

The test reads the tutorial's code blocks in order and does what a reader would:

- a ``sh`` block: each line is a command, run in a fresh project directory (``cd`` moves
  there); ``python manage.py celeriac worker ...`` starts a worker in the background, as
  "a second terminal", replacing the one already running;
- a ``python`` block opening with ``# <path>`` creates that file, or appends to it when
  the comment goes on with ``: add at the end``;
- a ``pycon`` block is a session of ``python manage.py shell``: it runs as a doctest there.

The virtualenv is this test's (celeriac installed with its ``django`` extra, as the
tutorial's install step does), so the install commands are checked, not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import django
import pytest

from .conftest import ROOT
from .workers import WorkerProcess

pytestmark = pytest.mark.skipif(django.VERSION < (6, 0), reason="the tutorial is for Django 6 (django.tasks); "
                                                                "make test runs it in the Python 3.13 leg")

DOC = ROOT / "docs" / "django.md"
HEADING = "## Tutorial: from `startproject` to a task that ran (Django 6)"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def tutorial_blocks() -> list[tuple[str, str]]:
    text = DOC.read_text()
    start = text.index(HEADING)
    end = text.index("\n## ", start + len(HEADING))
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text[start:end])]


def install_command() -> str:
    text = DOC.read_text()
    section = text[text.index("## Installing"):text.index(HEADING)]
    [(_, block)] = [(m.group(1), m.group(2)) for m in BLOCK.finditer(section)]
    return block.strip()


class Reader:
    """Does what the tutorial says, in a directory of its own."""

    def __init__(self, workdir: Path) -> None:
        self.cwd = workdir
        self.worker: WorkerProcess | None = None
        bin_dir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DJANGO_", "CELERY_", "CELERIAC_")) and k != "PYTHONPATH"}
        self.env["PATH"] = os.pathsep.join([bin_dir, self.env.get("PATH", "")])  # the virtualenv's python
        self.env["PYTHONUNBUFFERED"] = "1"

    def shell_block(self, block: str) -> None:
        for line in block.splitlines():
            command = line.strip()
            if not command or command.startswith("#"):
                continue
            words = shlex.split(command)
            if words[0] == "cd":
                self.cwd = self.cwd / words[1]
            elif words[:4] == ["python", "manage.py", "celeriac", "worker"]:
                self.stop_worker()
                self.worker = WorkerProcess(words, self.env, self.cwd)
            else:
                done = subprocess.run(command, shell=True, cwd=self.cwd, env=self.env, capture_output=True,
                                      text=True, timeout=120)
                assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"

    def python_block(self, block: str) -> None:
        first, _, body = block.partition("\n")
        match = re.fullmatch(r"# (\S+)(: add at the end)?", first.strip())
        assert match, f"a python block of the tutorial names its file first: {first!r}"
        path = self.cwd / match.group(1)
        if match.group(2):
            path.write_text(path.read_text() + "\n" + body)
        else:
            path.write_text(block)

    def pycon_block(self, block: str) -> None:
        script = self.cwd / "tutorial_session.txt"
        script.write_text(block)
        runner = (
            "import doctest, sys\n"
            f"text = open({str(script)!r}).read()\n"
            "test = doctest.DocTestParser().get_doctest(text, {}, 'tutorial', 'docs/django.md', 0)\n"
            "runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)\n"
            "runner.run(test)\n"
            "sys.exit(1 if runner.failures else 0)\n"
        )
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", runner], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120)
        worker_log = self.worker.output() if self.worker else ""
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nworker:\n{worker_log}"

    def stop_worker(self) -> None:
        if self.worker is not None:
            assert self.worker.stop() == 0, self.worker.output()


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    following = Reader(tmp_path)
    try:
        yield following
    finally:
        following.stop_worker()


def test_the_install_command_names_a_checkout_and_the_django_extra() -> None:
    command = install_command()
    assert re.fullmatch(r"pip install -e '\S+\[django\]'", command), command
    extras = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^django = \[', extras, re.MULTILINE)  # the extra it names exists


def test_the_tutorial_runs_as_written(reader: Reader) -> None:
    blocks = tutorial_blocks()
    assert [kind for kind, _ in blocks].count("pycon") == 2  # django.tasks, then Celery's API
    for kind, block in blocks:
        if kind == "sh":
            reader.shell_block(block)
        elif kind == "python":
            reader.python_block(block)
        elif kind == "pycon":
            reader.pycon_block(block)
        else:
            raise AssertionError(f"the tutorial has a {kind!r} block this test cannot follow")
    assert reader.worker is not None
    log = reader.worker.output()
    assert "greetings.tasks.greet state=SUCCESSFUL" in log and "greetings.tasks.add[" in log, log
    # Each framework line once, with DEBUG = True as startproject writes it.
    assert log.count("greetings.tasks.greet state=SUCCESSFUL") == 1, log
