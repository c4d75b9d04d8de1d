"""``python -m bench``: every queue, every metric, one Redis; table, markdown and chart.

    python -m bench                                   everything (about 10 minutes)
    python -m bench --only celeriac,celery --metrics drain
    python -m bench --quick                           small sizes: a smoke run
    python -m bench --profile                         only: py-spy the celeriac worker's drain
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import metrics, report
from .harness import BenchFailure, Harness
from .metrics import FULL, METRICS, QUICK, SELECTABLE, Outcome, Results, keys_of, steps_for
from .peers import Peer, common, select

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated queues or families (celeriac, celery, dramatiq, ...)")
    parser.add_argument("--metrics", help=f"comma-separated, from {', '.join(SELECTABLE)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
                        help="a dedicated database: it is flushed between runs (default db 14)")
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
    return args


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # wide enough for the table when output goes to a file or a pipe (rich assumes 80)
    console = Console(width=None if sys.stdout.isatty() else 180)
    peers = select(args.only)
    sizes = QUICK if args.quick else FULL
    steps = steps_for(args.chosen)
    keys = [m.key for m in METRICS if any(m.key in keys_of(step) for step, _ in steps)]
    harness = Harness(redis_url=args.redis_url, log_dir=args.output / "logs")
    if args.profile:
        from .profile import profile_drain

        try:
            with console.status("profiling the celeriac worker's drain"):
                console.print(f"written: {profile_drain(harness, sizes, args.output / 'profile-drain.txt')}")
        finally:
            harness.close()
        return
    results: dict[str, Results] = {}
    try:
        if "io" in args.chosen:
            harness.start_http_server()
        with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task_id = progress.add_task("starting", total=len(peers) * len(steps))
            for peer in peers:
                results[peer.name] = run_peer(harness, peer, steps, sizes, progress, task_id)
            io_floor_s = metrics.measure_io_floor(harness, sizes) if "io" in args.chosen else None
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
        )
        console.print(report.rich_table(peers, keys, results))
        if io_floor_s is not None:
            console.print(f"I/O floor (no queue, {sizes.io:,} concurrent GETs from one process): {io_floor_s:.2f} s")
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "latest.md").write_text(report.markdown(peers, keys, results, info, metrics.__doc__ or ""))
        report.chart(peers, keys, results, args.output / "latest.png")
        report.write_json(args.output / "latest.json", results, info)
        console.print(f"written: {args.output / 'latest.md'}, latest.png, latest.json")
    finally:
        harness.close()


if __name__ == "__main__":
    main()
