"""``python -m bench``: every queue, every metric, on Redis, PostgreSQL and SQLite; tables,
markdown and charts.

    python -m bench                                   all three tables (about 30 minutes)
    python -m bench --server postgres                 one table: redis, postgres or sqlite
    python -m bench --only celeriac,celery --metrics drain
    python -m bench --quick                           small sizes: a smoke run
    python -m bench --profile [--server postgres]     only: py-spy the celeriac worker's drain
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sqlite3
import sys
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import metrics, report
from .harness import BenchFailure, Harness
from .metrics import FULL, METRICS, QUICK, SELECTABLE, Outcome, Results, keys_of, steps_for
from .peers import SERVERS, Peer, Server, common, select

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The CPU-bound drain compares worker pools, not brokers: the Redis table has it, the others
# only when --metrics asks.
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "redis": SELECTABLE, "postgres": tuple(m for m in SELECTABLE if m != "cpu"),
    "sqlite": tuple(m for m in SELECTABLE if m != "cpu"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated queues or families (celeriac, celery, dramatiq, ...)")
    parser.add_argument("--metrics", help=f"comma-separated, from {', '.join(SELECTABLE)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
                        help="a dedicated database: it is flushed between runs (default db 14)")
    parser.add_argument("--server", choices=[*SERVERS, "all"], default="all",
                        help="which table: the queues on Redis, on PostgreSQL or on SQLite (default: all three)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", common.PG_URL),
                        help="the PostgreSQL database of the postgres table: each queue gets a schema of "
                             "its own (bench_<queue>), emptied between runs")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="where latest.md/.png/.json go")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the comparison, profile the celeriac worker's drain with py-spy "
                             "(writes profile-drain.txt only)")
    parser.add_argument("--http-client", choices=common.HTTP_CLIENTS, default=None,
                        help="the I/O tasks' HTTP client (default curl_cffi; httpx is a diagnostic)")
    parser.add_argument("--http-shards", type=int, default=None,
                        help="with --http-client httpx: httpcore pools per client (default 256; 1 is a plain "
                             "client, whose pool scan dominates the I/O run)")
    args = parser.parse_args(argv)
    if args.http_client is not None:
        os.environ["BENCH_HTTP_CLIENT"] = args.http_client  # inherited by workers
    if args.http_shards is not None:
        os.environ["BENCH_HTTP_SHARDS"] = str(args.http_shards)  # inherited by workers
    chosen = [m.strip() for m in (args.metrics or ",".join(SELECTABLE)).split(",") if m.strip()]
    unknown = set(chosen) - set(SELECTABLE)
    if unknown:
        parser.error(f"unknown metric(s) {', '.join(sorted(unknown))}; expected some of {', '.join(SELECTABLE)}")
    args.chosen = chosen
    args.servers = list(SERVERS) if args.server == "all" else [args.server]
    return args


def chosen_for(args: argparse.Namespace, server: Server) -> list[str]:
    """The metrics of one table: as asked, or that server's defaults."""
    return list(args.chosen) if args.metrics else [m for m in args.chosen if m in DEFAULT_METRICS[server]]


def output_name(server: Server, suffix: str) -> str:
    """latest.md for Redis (the first table), latest-postgres.md and latest-sqlite.md for the others."""
    return f"latest{suffix}" if server == "redis" else f"latest-{server}{suffix}"


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = psutil.virtual_memory().total / 2**30
    return (f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def versions_of(peer: Peer, harness: Harness) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in peer.distributions:
        try:
            if peer.side_dir is not None:  # arq and its redis-py live in their own directory
                dists = list(metadata.distributions(name=name, path=[str(peer.side_dir)]))
                if dists:
                    found[name] = dists[0].version
                    continue
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_peer(harness: Harness, peer: Peer, steps: list[metrics.Step], sizes: metrics.Sizes,
             progress: Progress, task_id: object) -> Results:
    results: Results = {}
    try:
        harness.install_side(peer)
        harness.use(peer)  # flush() now empties its schema or file too
        harness.driver(peer, "check", timeout_s=120)
        setup_error = None
    except BenchFailure as exc:
        setup_error = str(exc)
    for step, measure in steps:
        progress.update(task_id, description=f"{peer.name}: {step}")  # type: ignore[arg-type]
        if setup_error is not None:
            results.update({key: Outcome(note=setup_error) for key in keys_of(step)})
        else:
            try:
                results.update(measure(harness, peer, sizes))
            except BenchFailure as exc:
                results.update({key: Outcome(note=str(exc)) for key in keys_of(step)})
        progress.advance(task_id)  # type: ignore[arg-type]
    return results


def _compile_checkout() -> None:
    """Byte-compile celeriac's checkout, the bench's apps and the peers' side installs.

    The venv's packages were byte-compiled by pip at install. celeriac is installed from this
    checkout in editable mode and the side installs (``pip --target``) came out without
    ``.pyc`` files, so with PYTHONDONTWRITEBYTECODE set (as on our machines) each worker
    process would compile its modules again at start-up, on the drain's clock (~0.1 s for
    celeriac). Compiling them all once here puts every queue on the same footing.
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for directory in (root / "celeriac", root / "bench"):
        compileall.compile_dir(directory, quiet=1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # wide enough for the table when output goes to a file or a pipe (rich assumes 80)
    console = Console(width=None if sys.stdout.isatty() else 180)
    sizes = QUICK if args.quick else FULL
    _compile_checkout()
    harness = Harness(redis_url=args.redis_url, log_dir=args.output / "logs", pg_url=args.pg_url)
    if args.profile:
        from .profile import profile_drain

        try:
            for server in args.servers:
                with console.status(f"profiling the celeriac worker's drain on {server}"):
                    out = args.output / output_name(server, "").replace("latest", "profile-drain", 1)
                    console.print(f"written: {profile_drain(harness, sizes, out.with_suffix('.txt'), server)}")
        finally:
            harness.close()
        return
    try:
        if any("io" in chosen_for(args, server) for server in args.servers):
            harness.start_http_server()
        for server in args.servers:
            peers = select(args.only, server)
            if peers:
                run_table(args, argv, console, harness, server, peers, sizes)
    finally:
        harness.close()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


SERVER_TITLES = {"redis": "Redis", "postgres": "PostgreSQL", "sqlite": "SQLite"}


def run_table(args: argparse.Namespace, argv: list[str] | None, console: Console, harness: Harness,
              server: Server, peers: list[Peer], sizes: metrics.Sizes) -> None:
    """One server's table: every chosen peer and metric, then the table, markdown, chart and JSON."""
    chosen = chosen_for(args, server)
    steps = steps_for(chosen)
    keys = [m.key for m in METRICS if any(m.key in keys_of(step) for step, _ in steps)]
    results: dict[str, Results] = {}
    with Progress(TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task_id = progress.add_task("starting", total=len(peers) * len(steps))
        for peer in peers:
            results[peer.name] = run_peer(harness, peer, steps, sizes, progress, task_id)
        harness.peer = None
        io_floor_s = metrics.measure_io_floor(harness, sizes) if "io" in chosen else None
        progress.update(task_id, description="done")
    info = report.RunInfo(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine_description(),
        command=shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        sizes={k: v for k, v in vars(sizes).items()},
        redis_url=args.redis_url,
        redis_version=str(harness.store.info("server").get("redis_version", "?")),
        versions={p.name: versions_of(p, harness) for p in peers},
        commands={p.name: {"default": shlex.join(p.argv("default")), "io": shlex.join(p.argv("io"))}
                  for p in peers},
        io_floor_s=io_floor_s,
        http_client=common.http_client_name(),
        http_shards=args.http_shards or common.HTTP_SHARDS_DEFAULT,
        server=server,
        server_description=server_description(harness, server),
    )
    console.print(report.rich_table(peers, keys, results, title=SERVER_TITLES[server]))
    if io_floor_s is not None:
        console.print(f"I/O floor (no queue, {sizes.io:,} concurrent GETs from one process): {io_floor_s:.2f} s")
    args.output.mkdir(parents=True, exist_ok=True)
    md, png, js = (output_name(server, suffix) for suffix in (".md", ".png", ".json"))
    (args.output / md).write_text(report.markdown(peers, keys, results, info, metrics.__doc__ or ""))
    report.chart(peers, keys, results, args.output / png, title=SERVER_TITLES[server])
    report.write_json(args.output / js, results, info)
    console.print(f"written: {args.output / md}, {png}, {js}")


def server_description(harness: Harness, server: Server) -> str:
    """The table's server, for the report (the Redis line is always there: it counts completions)."""
    if server == "postgres":
        try:
            version = harness.pg_version()
        except Exception as exc:  # the table then says why each row failed
            version = f"? ({exc})"
        return (f"PostgreSQL {version} at {_without_password(harness.pg_url)}: one database, each queue's "
                "tables in a schema of its own (bench_<queue>), emptied (TRUNCATE) between runs")
    if server == "sqlite":
        return (f"SQLite {sqlite3.sqlite_version} (Python's sqlite3): one file per queue in {harness.sqlite_dir}, "
                "deleted between runs")
    return ""


if __name__ == "__main__":
    main()
