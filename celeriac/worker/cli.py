"""``celeriac worker``: Celery's options, spelled as Celery spells them.

Options that mean nothing here (gossip, mingle, heartbeat, prefetch tuning) are accepted
so existing start scripts run unchanged, and logged once as ignored.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import Any

import click

logger = logging.getLogger("celeriac.worker")

IGNORED_FLAGS = ("without_gossip", "without_mingle", "without_heartbeat")


@click.command("worker", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--concurrency", type=int, default=None,
              help="Tasks in flight at once, sync and async together (default 100; with -P prefork, "
                   "its children: one per CPU).")
@click.option("-Q", "--queues", default=None, help="Comma-separated queues to consume from.")
@click.option("-l", "--loglevel", "--log-level", default="WARNING", show_default=True,
              help="INFO logs one line per task outcome.")
@click.option("-n", "--hostname", default=None, help="Worker name, e.g. worker1@%h.")
@click.option("-P", "--pool", type=click.Choice(["threads", "solo", "prefork", "gevent", "eventlet"]),
              default=None, help="Where sync tasks run: threads (default), prefork (child processes: "
                                 "CPU-bound work, hard time limits) or solo.")
@click.option("--shutdown-timeout", type=float, default=None,
              help="Seconds running tasks get to finish on SIGTERM (default 30).")
@click.option("--lease-seconds", type=float, default=None, help="Lease length (default 60).")
@click.option("--until-empty", "--burst", is_flag=True, help="Stop once the queues are empty.")
@click.option("-O", "optimization", default=None, help="Accepted (fetching is always fair).")
@click.option("--prefetch-multiplier", type=int, default=None, help="Accepted (fetch is by free slot).")
@click.option("--without-gossip", is_flag=True, hidden=True)
@click.option("--without-mingle", is_flag=True, hidden=True)
@click.option("--without-heartbeat", is_flag=True, hidden=True)
@click.option("-E", "--task-events", is_flag=True, hidden=True)
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), default=None,
              help="-P prefork: replace a child after this many tasks.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1), default=None,
              help="-P prefork: replace a child, after its task, once it holds this much resident memory (KiB).")
@click.option("--autoscale", default=None, metavar="MAX,MIN",
              help="-P prefork: between MIN and MAX children, more while tasks wait, fewer after 30s idle.")
@click.option("--processes", default=None, metavar="K|auto",
              help="Run K worker processes (auto: one per CPU) under a supervisor that restarts them.")
@click.option("-f", "--logfile", default=None, help="Log to this file instead of stderr.")
@click.option("--pidfile", default=None, help="Write the process id here.")
@click.option("-B", "--beat", is_flag=True, help="Also run a beat in this process (any number may run).")
@click.option("-S", "--scheduler", default=None, help="With -B: 'default' or 'django'.")
@click.option("-s", "--schedule-filename", "--schedule", "schedule_file", default=None, hidden=True)
@click.pass_context
def worker_command(ctx: click.Context, /, **options: Any) -> None:
    """Start a worker."""
    from ..loading import load_app
    from .supervisor import process_count

    try:
        processes = process_count(options["processes"])
        pool_options = _pool_options(options)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    setup_logging(options["loglevel"], options["logfile"])
    app = load_app(ctx)
    _log_ignored(options, options["pool"] or app.settings.worker_pool)
    if options["pidfile"]:
        with open(options["pidfile"], "w") as f:
            f.write(str(os.getpid()))
    app.import_default_modules()
    drop_duplicate_handlers()  # Django's logging is set up by now
    app.finalize()  # on_after_configure / on_after_finalize receivers, as Celery's worker runs them
    if processes > 1:
        from .supervisor import Supervisor

        supervisor = Supervisor(
            processes, lambda index: _run_worker(ctx, app, options, pool_options, index),
            until_empty=options["until_empty"],
        )
        code = supervisor.run()
        logging.shutdown()
        sys.exit(code)
    _exit(*_run_worker_once(ctx, app, options, pool_options, None))


def _run_worker(ctx: click.Context, app: Any, options: dict[str, Any], pool_options: dict[str, Any],
                index: int) -> int:
    """One of ``--processes``' workers, in its forked process: its exit code (the process
    then ends with ``os._exit``, so threads a pool abandoned are not waited for)."""
    return _run_worker_once(ctx, app, options, pool_options, index)[0]


def _run_worker_once(ctx: click.Context, app: Any, options: dict[str, Any], pool_options: dict[str, Any],
                     index: int | None) -> tuple[int, bool]:
    """Run one worker in this process: (its exit code, whether pool threads were abandoned)."""
    from .loop import Worker

    worker = Worker(
        app, queues=options["queues"].split(",") if options["queues"] else None,
        concurrency=options["concurrency"], pool=options["pool"],
        hostname=numbered_hostname(options["hostname"], index),
        lease_s=options["lease_seconds"], shutdown_timeout_s=options["shutdown_timeout"],
        until_empty=options["until_empty"], pool_options=pool_options,
    )
    if options["beat"] and (index is None or index == 1):  # with --processes, the first worker's beat
        from ..beat import Beat, run_with_worker
        from ..beat.ops import make_source
        from ..exceptions import ConfigurationError

        try:
            beat = Beat(app, source=make_source(app, options["scheduler"]), handle_signals=False)
            run_loop(run_with_worker(worker, beat))
        except ConfigurationError as exc:  # a bad schedule entry: one line naming it, before the worker starts
            raise click.ClickException(str(exc)) from None
    else:
        run_loop(worker.run())
    return worker.exit_code, worker.abandoned_threads


def _exit(code: int, abandoned_threads: bool) -> None:
    logging.shutdown()
    # Everything is written and closed: spare the interpreter its last collection of a
    # worker's objects (0.1-0.2 s with Django and redis-py loaded), which frees memory the
    # exit gives back anyway, so that an idle worker is gone soon after SIGTERM.
    gc.freeze()
    if abandoned_threads:
        # The pool reported task bodies still running on threads, which cannot be stopped
        # (worker/pool.py); their tasks are settled or released already, so leave without
        # waiting for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


def numbered_hostname(pattern: str | None, index: int | None) -> str | None:
    """Worker ``index`` of ``--processes``: ``celeriac@%h`` becomes ``celeriac1@%h``."""
    if index is None:
        return pattern
    name, at, domain = (pattern or "celeriac@%h").partition("@")
    return f"{name}{index}{at}{domain}"


def _pool_options(options: dict[str, Any]) -> dict[str, Any]:
    """The prefork pool's options from the command line (ValueError if one is malformed)."""
    chosen: dict[str, Any] = {}
    if options["max_tasks_per_child"]:
        chosen["max_tasks_per_child"] = options["max_tasks_per_child"]
    if options["max_memory_per_child"]:
        chosen["max_memory_per_child"] = options["max_memory_per_child"]
    if options["autoscale"]:
        chosen["autoscale"] = parse_autoscale(options["autoscale"])
    if chosen and options["pool"] not in (None, "prefork"):
        return {}  # logged as ignored: they mean something to prefork only
    return chosen


def parse_autoscale(text: str) -> tuple[int, int]:
    """``--autoscale MAX,MIN`` (as Celery; ``MAX`` alone means MIN 0) as (max, min)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2):
        raise ValueError(f"--autoscale takes MAX,MIN (two integers), got {text!r}")
    most, least = (numbers[0], 0) if len(numbers) == 1 else (max(numbers), min(numbers))
    if most < 1 or least < 0:
        raise ValueError(f"--autoscale needs MAX >= 1 and MIN >= 0, got {text!r}")
    return most, least


def run_loop(coro: Any) -> None:
    """Run on uvloop when it is installed, else asyncio's default loop."""
    run: Any = asyncio.run
    try:
        import uvloop
    except ImportError:
        pass
    else:
        run = uvloop.run
    # Outside the except block: the worker must not run while an ImportError is being
    # handled, or every exception raised in it (a task's) carries it as its context.
    run(coro)


def setup_logging(level: str, logfile: str | None = None) -> None:
    """Celery's worker logging, and its logging signals (``celeriac.utils.log.setup_logging``)."""
    from ..utils.log import setup_logging as set_up

    set_up(level, logfile)


def drop_duplicate_handlers() -> None:
    """Detach handlers that print, to the worker's own stream, records the root prints too.

    The worker logs through one handler on the root logger, which prints every record that
    propagates to it. Django's default logging with ``DEBUG = True`` (what ``startproject``
    writes) gives the ``django`` logger a console handler of its own on the same stderr and
    lets it propagate, so each ``django.tasks`` line appeared twice in the worker's log.
    Handlers on other streams (files, mail, ...) and on loggers that do not propagate stay.
    """
    root = logging.getLogger()
    streams = {id(h.stream) for h in root.handlers if isinstance(h, logging.StreamHandler)}
    if not streams:
        return
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(candidate, logging.Logger) or not _propagates_to_root(candidate):
            continue
        for handler in list(candidate.handlers):
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in streams:
                candidate.removeHandler(handler)


def _propagates_to_root(found: logging.Logger) -> bool:
    current: logging.Logger | None = found
    while current is not None and current.parent is not None:
        if not current.propagate:
            return False
        current = current.parent
    return True


def _log_ignored(options: dict[str, Any], pool: str) -> None:
    ignored = [f"--{name.replace('_', '-')}" for name in IGNORED_FLAGS if options.get(name)]
    if options.get("optimization"):
        ignored.append(f"-O{options['optimization']}")
    if options.get("prefetch_multiplier") is not None:
        ignored.append("--prefetch-multiplier")
    if options.get("task_events"):
        ignored.append("-E")
    if pool != "prefork":
        ignored += [f"--{name.replace('_', '-')} (prefork only)" for name in
                    ("max_tasks_per_child", "max_memory_per_child", "autoscale") if options.get(name)]
    if options.get("schedule_file"):
        ignored.append(f"--schedule {options['schedule_file']} (beat keeps its state with the broker)")
    if ignored:
        logger.info("accepted and ignored (no meaning here: workers fetch by free slot and "
                    "need no gossip, mingle or heartbeat): %s", " ".join(ignored))
