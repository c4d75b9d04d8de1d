"""The results as a rich table, a markdown page and a bar chart, each figure next to its
ratio to celeriac's (peer / celeriac, so >1 is better for rates and worse for times)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .metrics import METRIC_BY_KEY, Metric, Outcome, Results
from .peers import BASELINE, Peer

CAVEATS = """\
- I/O tasks use curl_cffi (libcurl), every queue the same client with no pool limit:
  it costs the least CPU per request of the clients tried, so the makespan says more
  about the queue. The I/O floor above is the same client with no queue. With httpx
  (`--http-client httpx`), 1,000 GETs from one process cost ~0.7 s of CPU even with
  its connections spread over 256 httpcore pools, and ~20 s in its single pool, which
  walks every connection for each request (encode/httpcore#1035).
- Drain and I/O clocks start when the worker process is spawned, so start-up counts
  (Celery's is over a second); the rate from first to last completion is in Details.
- Dramatiq (its Redis consumer backs off when idle) and arq (polls every 0.5 s) poll an
  empty queue, so their idle latency is their poll interval, not a message's path.
- RSS is summed over the process tree, so pages a forked child shares with its parent
  count twice (Celery prefork, Dramatiq, taskiq would be lower by PSS).
- At their default INFO level arq, streaQ and taskiq log two lines per task (to a file
  here); Celery (WARNING), Dramatiq and celeriac log nothing per task by default.
- celeriac runs one process by default; Celery prefork, Dramatiq and taskiq run two.
  celeriac-processes (`--processes 2`) and celeriac-prefork (`-P prefork`, two children)
  are the two-process rows. The machine has 2 cores, shared with Redis, the harness and
  (I/O run) the HTTP server.
- The CPU-bound drain's tasks hold the GIL for 5 ms each: a thread pool or an event loop
  runs one at a time (at most ~200/s per process), so only processes help.
- Every task counts its completion in its own process; a thread of that process adds the
  count to a Redis counter every 5 ms (the same code for every queue). Until 2026-11-30
  each task ran one `INCR`, 80-130 µs of the worker's CPU per task at `-c 100`, which
  every queue paid and which flattened the drain's ratios.
- arq pins redis-py < 6, so it runs from its own `pip --target` directory with
  redis-py 5; everything else shares the venv's redis-py.
"""


SERVER_TITLES = {"redis": "Redis", "postgres": "PostgreSQL", "sqlite": "SQLite"}

POSTGRES_CAVEATS = """\
- Every queue uses the same PostgreSQL database, each in a schema of its own, emptied
  (TRUNCATE) before and after each run; completions are counted in Redis as in the Redis
  table (in the worker, flushed every 5 ms by a thread), so a no-op task is the queue's
  own PostgreSQL work.
- Drain and I/O clocks start when the worker process is spawned, so start-up counts; the
  rate from first to last completion is in Details.
- procrastinate runs with `--concurrency 100` (celeriac's `-c`): its default of one job at
  a time drains ~26 tasks/s here. PgQueuer dequeues 10 jobs per query by default with no
  concurrency cap. Both wake on LISTEN/NOTIFY, as celeriac does.
- celeriac hands a reserve's messages to the worker before the lease's COMMIT has reached
  the disk (the rows stay locked until it has; an ack waits for it), so an idle worker's
  latency holds one disk flush (the publish's) rather than two.
- Celery's kombu SQLAlchemy transport has no LISTEN: an idle worker polls every second,
  so its latency is its poll interval. It fetches one message per query and keeps
  delivered rows (visible = false) in its table; at ~30 tasks/s its drain is timed on
  2,000 tasks (marked in the table), not 20,000.
- procrastinate keeps finished jobs as rows (status succeeded) and PgQueuer moves them to
  its log table, both their defaults; celeriac deletes a message when it is acknowledged.
- PostgreSQL runs on the same 2 cores as the workers, the producer and the harness.
- procrastinate, PgQueuer and SQLAlchemy run from their own `pip --target` directories
  (their dependencies may pin versions the venv does not have).
"""

SQLITE_CAVEATS = """\
- celeriac and Huey each use one SQLite file of their own (WAL), deleted before and after
  each run; completions are counted in Redis as in the Redis table.
- Huey's consumer polls: every 0.1 s, backing off by 1.15x to 10 s while the queue is
  empty, so its idle latency is its poll interval. SQLite cannot notify another process
  either: an idle celeriac worker polls with a read-only look, from 2 ms backing off to
  100 ms.
- Huey has no batch enqueue: `task.map()` is one INSERT and commit per task.
- Huey runs one worker thread by default; celeriac runs `-c 100` by default.
"""

SERVER_CAVEATS = {"postgres": POSTGRES_CAVEATS, "sqlite": SQLITE_CAVEATS}


@dataclass
class RunInfo:
    date: str
    machine: str
    command: str
    sizes: dict[str, int]
    redis_url: str
    redis_version: str
    versions: dict[str, dict[str, str]]  # peer -> distribution -> version
    commands: dict[str, dict[str, str]]  # peer -> run -> worker command line
    io_floor_s: float | None = None  # the I/O run's GETs from one process, no queue
    http_client: str = "curl_cffi"  # httpx only in a diagnostic run
    http_shards: int = 256  # httpcore pools per httpx client
    server: str = "redis"  # the table's server: redis, postgres or sqlite
    server_description: str = ""  # the PostgreSQL or SQLite line of the report


def format_value(metric: Metric, value: float) -> str:
    if metric.unit == "tasks/s":
        return f"{value:,.0f}/s"
    if metric.unit == "MB":
        return f"{value:,.0f} MB"
    if metric.unit == "ms":
        return f"{value:,.2f} ms"
    return f"{value:,.2f} s"


def ratio(metric_key: str, peer: str, results: dict[str, Results]) -> float | None:
    base = results.get(BASELINE, {}).get(metric_key)
    mine = results.get(peer, {}).get(metric_key)
    if base is None or mine is None or base.value in (None, 0.0) or mine.value is None:
        return None
    return mine.value / base.value


def cell(metric_key: str, peer: str, results: dict[str, Results]) -> str:
    outcome = results.get(peer, {}).get(metric_key)
    if outcome is None:
        return "-"
    if outcome.value is None:
        return outcome.note or "failed"
    text = format_value(METRIC_BY_KEY[metric_key], outcome.value)
    found = ratio(metric_key, peer, results)
    if found is not None and peer != BASELINE:
        text += f" ({found:.2f}x)"
    if outcome.details.get("of_tasks"):  # a slow queue's shorter drain
        text += f" [{outcome.details['of_tasks']:,} tasks]"
    if outcome.details.get("errors"):
        text += f" [{outcome.details['errors']} GETs failed]"
    return text


def header(metric: Metric) -> str:
    return f"{metric.title} ({'higher' if metric.higher_is_better else 'lower'} is better)"


def short_header(metric: Metric) -> str:
    return f"{metric.title}\n{metric.unit} {'↑' if metric.higher_is_better else '↓'}"


def rich_table(peers: list[Peer], keys: list[str], results: dict[str, Results], title: str = "Redis") -> Table:
    table = Table(title=f"celeriac vs peers on {title}: figure (peer / celeriac)", show_lines=True,
                  caption="↑ higher is better, ↓ lower is better")
    table.add_column("queue", style="bold", no_wrap=True)
    for key in keys:
        table.add_column(short_header(METRIC_BY_KEY[key]), overflow="fold")
    for peer in peers:
        table.add_row(peer.name, *(cell(key, peer.name, results) for key in keys))
    return table


def markdown(peers: list[Peer], keys: list[str], results: dict[str, Results], info: RunInfo,
             method: str) -> str:
    server_title = SERVER_TITLES.get(info.server, info.server)
    lines = [
        f"# celeriac benchmark on {server_title}: latest run", "",
        f"- date: {info.date}",
        f"- machine: {info.machine}",
        *([f"- {server_title}: {info.server_description}"] if info.server_description else []),
        f"- Redis: {info.redis_version} at {info.redis_url} (one server, one database, flushed between runs)"
        + ("" if info.server == "redis" else "; here it only counts completions and latency stamps, "
           "the same counter and RPUSH from every queue's tasks"),
        f"- command: `{info.command}`",
        (f"- HTTP client: httpx, no pool limit, connections spread over {info.http_shards} httpcore pool(s)"
         if info.http_client == "httpx" else
         "- HTTP client: curl_cffi (libcurl): `AsyncSession(max_clients=4096)`, above any run's "
         "concurrency, and one sync `Session` per thread: no pool limit"),
        "- sizes: " + ", ".join(f"{k}={v:,}" for k, v in info.sizes.items()),
        "", "Each cell: the figure, then in brackets the ratio peer / celeriac.", "",
        *([f"I/O floor: the same {info.sizes['io']:,} GETs fired at once from one process with "
           f"the async tasks' client ({info.http_client}) and no queue take {info.io_floor_s:.2f} s here.", ""]
          if info.io_floor_s is not None else []),
        "| queue | " + " | ".join(header(METRIC_BY_KEY[k]) for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for peer in peers:
        lines.append(f"| {peer.name} | " + " | ".join(cell(k, peer.name, results) for k in keys) + " |")
    lines += ["", "## Settings per queue", "",
              "| queue | versions | defaults used | results | I/O run |", "|---|---|---|---|---|"]
    for peer in peers:
        versions = ", ".join(f"{d} {v}" for d, v in info.versions.get(peer.name, {}).items())
        lines.append(f"| {peer.name} | {versions} | {peer.defaults} | {peer.results} | {peer.io_setting} |")
    lines += ["", "## Worker commands", ""]
    for peer in peers:
        for run, command in info.commands.get(peer.name, {}).items():
            lines.append(f"- {peer.name} ({run}): `{command}`")
    lines += ["", "## Details", ""]
    for peer in peers:
        for key in keys:
            outcome = results.get(peer.name, {}).get(key)
            if key == "latency_p99":
                continue  # one run gives both centiles; its details are under latency_p50
            if outcome is not None and outcome.details:
                figures = ", ".join(f"{k}={_short(v)}" for k, v in outcome.details.items())
                lines.append(f"- {peer.name} {key}: {figures}")
    lines += ["", "## Caveats", "", SERVER_CAVEATS.get(info.server, CAVEATS).strip()]
    lines += ["", "## Method", "", "```", method.strip(), "```", ""]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def chart(peers: list[Peer], keys: list[str], results: dict[str, Results], path: Path,
          title: str = "Redis") -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here; must precede pyplot
    import matplotlib.pyplot as plt

    columns = 2
    rows = (len(keys) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(12, 3.2 * rows), squeeze=False)
    names = [p.name for p in peers]
    for index, key in enumerate(keys):
        metric = METRIC_BY_KEY[key]
        ax = axes[index // columns][index % columns]
        values = [_value(results.get(n, {}).get(key)) for n in names]
        colours = ["tab:orange" if n == BASELINE else "tab:blue" for n in names]
        positions = list(range(len(names)))
        ax.barh(positions, [v or 0.0 for v in values], color=colours, left=0.0)
        ax.set_yticks(positions, names)
        ax.invert_yaxis()
        ax.set_title(f"{metric.title} ({metric.unit}, {'higher' if metric.higher_is_better else 'lower'} is better)",
                     fontsize=10)
        for position, value, name in zip(positions, values, names, strict=True):
            outcome = results.get(name, {}).get(key)
            label = format_value(metric, value) if value is not None else (
                (outcome.note or "failed").split(":")[0] if outcome else "-")
            ax.text(value or 0.0, position, f" {label}", va="center", fontsize=8)
        present = [v for v in values if v]
        if metric.unit == "ms" and present and max(present) / min(present) > 50:
            # a polling queue's hundreds of ms next to others' 2 ms: only a log axis shows both
            ax.set_xscale("log")
            ax.set_xlim(min(present) / 2, max(present) * 8)
        else:
            ax.margins(x=0.25)
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].axis("off")
    fig.suptitle(f"celeriac vs peers on one {title} (orange: celeriac)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _value(outcome: Outcome | None) -> float | None:
    return outcome.value if outcome is not None else None


def write_json(path: Path, results: dict[str, Results], info: RunInfo) -> None:
    payload = {"info": asdict(info),
               "results": {peer: {k: asdict(o) for k, o in rs.items()} for peer, rs in results.items()}}
    path.write_text(json.dumps(payload, indent=2))


def print_table(console: Console, table: Table) -> None:
    console.print(table)
