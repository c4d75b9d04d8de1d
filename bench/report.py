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
- celeriac runs one process; Celery prefork, Dramatiq and taskiq run two by default.
  The machine has 2 cores, shared with Redis, the harness and (I/O run) the HTTP server.
- Every task INCRs one Redis counter (same cost for every queue), so a "no-op" here is
  one Redis round trip, not zero work.
- arq pins redis-py < 6, so it runs from its own `pip --target` directory with
  redis-py 5; everything else shares the venv's redis-py.
"""


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
    if outcome.details.get("errors"):
        text += f" [{outcome.details['errors']} GETs failed]"
    return text


def header(metric: Metric) -> str:
    return f"{metric.title} ({'higher' if metric.higher_is_better else 'lower'} is better)"


def short_header(metric: Metric) -> str:
    return f"{metric.title}\n{metric.unit} {'↑' if metric.higher_is_better else '↓'}"


def rich_table(peers: list[Peer], keys: list[str], results: dict[str, Results]) -> Table:
    table = Table(title="celeriac vs peers: figure (peer / celeriac)", show_lines=True,
                  caption="↑ higher is better, ↓ lower is better")
    table.add_column("queue", style="bold", no_wrap=True)
    for key in keys:
        table.add_column(short_header(METRIC_BY_KEY[key]), overflow="fold")
    for peer in peers:
        table.add_row(peer.name, *(cell(key, peer.name, results) for key in keys))
    return table


def markdown(peers: list[Peer], keys: list[str], results: dict[str, Results], info: RunInfo,
             method: str) -> str:
    lines = [
        "# celeriac benchmark: latest run", "",
        f"- date: {info.date}",
        f"- machine: {info.machine}",
        f"- Redis: {info.redis_version} at {info.redis_url} (one server, one database, flushed between runs)",
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
    lines += ["", "## Caveats", "", CAVEATS.strip()]
    lines += ["", "## Method", "", "```", method.strip(), "```", ""]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def chart(peers: list[Peer], keys: list[str], results: dict[str, Results], path: Path) -> None:
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
    fig.suptitle("celeriac vs peers on one Redis (orange: celeriac)")
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
