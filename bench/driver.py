"""The producer side of one measurement, run in a subprocess: ``python -m bench.driver``.

Each queue's client runs in a process of its own, so no two queue libraries share an
interpreter (Dramatiq sets a global broker, arq needs an older redis-py) and the
harness's own work never competes with the timed loop. The last stdout line is JSON.

    python -m bench.driver PEER check            the client connects (and makes its tables)
    python -m bench.driver PEER enqueue N        one send per call, timed
    python -m bench.driver PEER batch N          the batch API, timed, or {"na": ...}
    python -m bench.driver PEER fill KIND N      untimed set-up for drain, I/O and CPU runs
    python -m bench.driver PEER ping TIMEOUT_S   a stamp task round trip: the worker is up
    python -m bench.driver PEER latency WARMUP SAMPLES
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time
from typing import Any

import redis

from .peers import find
from .peers.base import PeerClient
from .peers.common import REDIS_URL, SERVER, STAMPS_KEY

# Between latency samples: at least IDLE_GAP_S, so the previous task's ack and
# bookkeeping are over and each sample meets an idle worker, plus a random part as long
# as the slowest idle poll here (arq's 0.5 s): sends then land at random points of a
# polling worker's cycle, as a user's would, instead of in lockstep with it (which
# showed arq a steady 480 ms). Time is the subject here, hence a sleep.
IDLE_GAP_S = 0.02
DEPHASE_S = 0.5


def make_client(peer_name: str) -> PeerClient:
    peer = find(peer_name, SERVER)  # BENCH_SERVER: the harness says whose table this is
    module = importlib.import_module(peer.module)
    client: PeerClient = module.make_client(peer_name)
    return client


def wait_for_stamp(store: redis.Redis, timeout_s: float) -> float:
    popped: Any = store.blpop([STAMPS_KEY], timeout=timeout_s)
    if popped is None:
        raise TimeoutError(f"no task started within {timeout_s:.0f}s")
    return float(popped[1])


def run(peer_name: str, op: str, args: list[str]) -> dict[str, Any]:
    client = make_client(peer_name)
    try:
        if op == "check":
            setup = getattr(client, "setup", None)
            if setup is not None:  # a queue whose tables are made by a command of its own
                setup()
            return {"ok": True}
        if op == "enqueue":
            n = int(args[0])
            client.enqueue_each("noop", 100)  # warm-up: connections, lazy imports
            started = time.perf_counter()
            client.enqueue_each("noop", n)
            return {"seconds": time.perf_counter() - started, "n": n}
        if op == "batch":
            n = int(args[0])
            if client.batch_api is None:
                return {"na": "no batch API"}
            client.enqueue_batch("noop", 10)  # warm-up
            started = time.perf_counter()
            client.enqueue_batch("noop", n)
            return {"seconds": time.perf_counter() - started, "n": n, "api": client.batch_api}
        if op == "fill":
            kind, n = args[0], int(args[1])
            started = time.perf_counter()
            client.fill(kind, n)
            return {"seconds": time.perf_counter() - started, "n": n}
        store = redis.Redis.from_url(REDIS_URL)
        if op == "ping":
            client.send("stamp", -1)
            wait_for_stamp(store, float(args[0]))
            return {"ok": True}
        if op == "latency":
            warmup, samples = int(args[0]), int(args[1])
            latencies_ms: list[float] = []
            gaps = random.Random(0)  # the same gaps for every queue
            for i in range(warmup + samples):
                time.sleep(IDLE_GAP_S + gaps.uniform(0.0, DEPHASE_S))
                sent_at = time.time()
                client.send("stamp", i)
                started_at = wait_for_stamp(store, 30.0)
                if i >= warmup:
                    latencies_ms.append((started_at - sent_at) * 1000.0)
            return {"samples_ms": latencies_ms}
        raise SystemExit(f"unknown driver operation {op!r}")
    finally:
        client.close()


def main() -> None:
    peer_name, op, *args = sys.argv[1:]
    print(json.dumps(run(peer_name, op, args)), flush=True)


if __name__ == "__main__":
    main()
