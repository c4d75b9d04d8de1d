"""Run Celery's own integration tests for canvas and tasks against celeriac (or Celery).

    python compat/celery_suite/run.py                      # celeriac, Redis db 9
    python compat/celery_suite/run.py --target celery      # the baseline: the same files on Celery
    python compat/celery_suite/run.py -- -k test_chord -x  # anything after -- goes to pytest

What it does, each run:

1. takes Celery's test sources from its sdist on PyPI (``pip download celery==5.5.3
   --no-binary :all: --no-deps``), kept in ``--cache`` (default
   ``compat/celery_suite/.cache``) so the download happens once;
2. copies ``t/integration/{__init__,conftest,tasks,test_canvas,test_tasks}.py`` into a
   scratch directory (``--workdir``, default a fresh temporary one) and, for
   ``--target celeriac``, rewrites the import statements and nothing else:
   ``import celery`` becomes ``import celeriac as celery``, ``from celery... import``
   becomes ``from celeriac... import``; the test bodies are untouched;
3. writes a ``pytest.ini`` with Celery's own pytest settings (its ``pyproject.toml``:
   classes named ``test_*`` are collected, ``xfail_strict``) and loads the target's
   fixtures plugin (``celeriac.contrib.pytest`` or ``celery.contrib.pytest``);
4. flushes the Redis database ``--db`` (9 unless told) and runs pytest there with
   ``TEST_BROKER`` and ``TEST_BACKEND`` both ``redis://127.0.0.1:6379/<db>``;
5. prints the counts (passed, failed, errors, skipped, xfailed, xpassed of N) read from
   pytest's JUnit XML (with Celery's ``xfail_strict``, a test Celery marks xfail for a bug
   of its own that passes is a pytest failure; it is counted apart, as
   ``xpassed-strict``), and writes every test's outcome to ``--outcomes`` (one
   ``outcome test-id`` a line, default ``<workdir>/outcomes.txt``) for comparing two runs.

The Python running this script runs the tests: for celeriac, a venv with celeriac and its
``celery-suite`` extra, and redis-py 7 (``make celery-suite`` makes ``.venv-celery-suite``:
the tests' helpers block on a plain ``StrictRedis`` for 10 s, past the 5 s socket timeout
redis-py 8 sets by default, so with redis-py 8 those helpers fail whatever the queue does);
for Celery, a separate venv with ``celery[redis]==5.5.3`` (its kombu pins redis-py 5.2.1),
pytest, pytest-subtests, pytest-timeout and pydantic (``make celery-suite-baseline``).
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

CELERY_VERSION = "5.5.3"
FILES = ("__init__.py", "conftest.py", "tasks.py", "test_canvas.py", "test_tasks.py")
HERE = Path(__file__).resolve().parent

# Celery's [tool.pytest.ini_options] (its pyproject.toml), without testpaths; timeout is
# pytest-timeout's per-test limit, so that a hang is a failure instead of a stuck run.
PYTEST_INI = """\
[pytest]
addopts = -p no:cacheprovider -p no:asyncio -p {plugin}
python_classes = test_*
xfail_strict = true
timeout = {timeout}
markers =
    sleepdeprived_patched_module
    masked_modules
    patched_environ
    patched_module
    flaky
    timeout
"""

# One import statement at the start of a line (any indentation): the only lines rewritten.
_FROM = re.compile(r"^(\s*from\s+)celery(\.[\w.]+)?(\s+import\b)", re.MULTILINE)
_IMPORT = re.compile(r"^(\s*import\s+)celery(\.[\w.]+)?(\s+as\s+\w+)?\s*$", re.MULTILINE)


def rewrite_imports(source: str) -> str:
    """``celery`` -> ``celeriac`` in import statements; nothing else changes."""

    def import_stmt(m: re.Match[str]) -> str:
        sub, alias = m.group(2) or "", m.group(3)
        if alias:
            return f"{m.group(1)}celeriac{sub}{alias}"
        if sub:  # `import celery.x` binds the name `celery`
            return f"{m.group(1)}celeriac{sub}; import celeriac as celery"
        return f"{m.group(1)}celeriac as celery"

    source = _FROM.sub(lambda m: f"{m.group(1)}celeriac{m.group(2) or ''}{m.group(3)}", source)
    return _IMPORT.sub(import_stmt, source)


def sdist(cache: Path) -> Path:
    tarball = cache / f"celery-{CELERY_VERSION}.tar.gz"
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"celery=={CELERY_VERSION}",
                        "--no-binary", ":all:", "--no-deps", "-d", str(cache)], check=True)
    return tarball


def prepare(tarball: Path, workdir: Path, target: str, timeout: int) -> None:
    dest = workdir / "t" / "integration"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    prefix = f"celery-{CELERY_VERSION}/t/"
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for relative in ("__init__.py", *(f"integration/{name}" for name in FILES)):
            member = members.get(prefix + relative)
            if member is None:
                if relative == "__init__.py":
                    (workdir / "t" / "__init__.py").write_text("")
                    continue
                raise SystemExit(f"{prefix + relative} is not in {tarball}")
            handle = tar.extractfile(member)
            assert handle is not None
            text = handle.read().decode()
            if target == "celeriac":
                text = rewrite_imports(text)
            (workdir / "t" / relative).write_text(text)
    plugin = "celeriac.contrib.pytest" if target == "celeriac" else "celery.contrib.pytest"
    (workdir / "pytest.ini").write_text(PYTEST_INI.format(plugin=plugin, timeout=timeout))


def flush(db: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def counts(junit: Path, outcomes_file: Path) -> Counter[str]:
    tally: Counter[str] = Counter()
    lines = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag == "failure" and (child.get("message") or "").startswith("[XPASS(strict)]"):
                outcome = "xpassed-strict"  # marked xfail (a Celery bug) yet passed: a failure under xfail_strict
            elif child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "error"
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        if outcome == "passed" and any(p.get("name") == "xpass" for p in case.iter("property")):
            outcome = "xpassed"
        tally[outcome] += 1
        lines.append(f"{outcome} {test_id}")
    outcomes_file.write_text("\n".join(sorted(lines)) + "\n")
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("celeriac", "celery"), default="celeriac")
    parser.add_argument("--db", type=int, default=int(os.environ.get("CELERY_SUITE_DB", "9")),
                        help="the Redis database for broker and backend, flushed first (default 9)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache", help="where the sdist is kept")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--outcomes", type=Path, help="write each test's outcome here")
    parser.add_argument("--timeout", type=int, default=180, help="pytest-timeout's limit per test, seconds")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (put them after --)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"celery-suite-{args.target}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(sdist(args.cache), workdir, args.target, args.timeout)
    flush(args.db)
    url = f"redis://127.0.0.1:6379/{args.db}"
    env = {**os.environ, "TEST_BROKER": url, "TEST_BACKEND": url, "PYTHONPATH": str(workdir)}
    junit = workdir / "junit.xml"
    # Both files, unless the arguments name tests of their own (t/integration/test_tasks.py::...).
    chosen = any(arg.startswith("t/") for arg in args.pytest_args)
    files = [] if chosen else ["t/integration/test_canvas.py", "t/integration/test_tasks.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", f"--junitxml={junit}", *files, *args.pytest_args]
    print(f"celery-suite: {args.target} in {workdir} on {url}", flush=True)
    status = subprocess.run(command, cwd=workdir, env=env).returncode
    if junit.exists():
        outcomes = args.outcomes or workdir / "outcomes.txt"
        tally = counts(junit, outcomes)
        total = sum(tally.values())
        order = ("passed", "failed", "xpassed-strict", "error", "skipped", "xfailed", "xpassed")
        summary = ", ".join(f"{tally[k]} {k}" for k in order if tally[k] or k in ("passed", "failed"))
        print(f"celery-suite ({args.target}, Celery {CELERY_VERSION}'s tests): {summary} of {total}")
        if tally["xpassed-strict"]:
            print(f"celery-suite: {tally['xpassed-strict']} of pytest's failures are XPASS(strict): tests Celery "
                  "marks xfail for its own known bugs, which passed here")
        print(f"celery-suite: each test's outcome is in {outcomes}")
    return status


if __name__ == "__main__":
    sys.exit(main())
