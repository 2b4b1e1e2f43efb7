"""Benchmark: bulk enrolment of N nodes through the API, then list latency under filters.

Runs a real uvicorn server on 127.0.0.1 (one process, like `metalfleet up`) against SQLite
and, when reachable, PostgreSQL; prints enrolment throughput and p50/p99 of
GET /v1/nodes?state=..&class=..&limit=100.

    .venv/bin/python bench/api_nodes.py --nodes 10000
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import create_engine, text, update

from metalfleet.api.app import create_app
from metalfleet.config import Settings
from metalfleet.db.models import Node
from metalfleet.server import bootstrap, tune_gc

STATES = ["available"] * 6 + ["active"] * 3 + ["enrolled", "manageable", "clean-failed"]
CLASSES = ["gpu-h100-8x", "gpu-a100-8x", "cpu-epyc", "gpu-l40s-4x"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, data_dir: Path) -> tuple[uvicorn.Server, str, str]:
    port = free_port()
    settings = Settings(data_dir=data_dir, database_url=url, port=port)
    context = bootstrap(settings)
    token = (data_dir / "admin.token").read_text().strip()
    server = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    tune_gc()  # as `metalfleet up` does before serving
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}", token


def node_body(i: int) -> dict[str, Any]:
    mac = ":".join(f"{b:02x}" for b in (0x52, 0x54, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF, 1))
    return {
        "name": f"node-{i:05d}",
        "node_class": CLASSES[i % len(CLASSES)],
        "bmc": {"driver": "fake", "address": f"fake://node-{i}", "username": "admin",
                "password": "pw"},
        "ports": [{"name": "eth0", "mac": mac, "pxe": True}],
        "labels": {"pool": "a" if i % 2 else "b"},
    }


def enrol(base: str, token: str, count: int, threads: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        for name in CLASSES:
            api.post("/v1/node-classes", json={"name": name})

    def worker(indices: range) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
            for i in indices:
                response = api.post("/v1/nodes", json=node_body(i))
                response.raise_for_status()

    started = time.perf_counter()
    chunk = (count + threads - 1) // threads
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, [range(t * chunk, min(count, (t + 1) * chunk))
                               for t in range(threads)]))
    return time.perf_counter() - started


def spread_states(url: str) -> None:
    """Give the nodes a realistic mix of states (the benchmark measures reads, not workflows)."""
    engine = create_engine(url)
    nodes = Node.__table__
    rng = random.Random(7)
    with engine.begin() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM nodes"))]
        for state in set(STATES):
            chosen = [i for i in ids if rng.random() < STATES.count(state) / len(STATES)]
            for start in range(0, len(chosen), 500):
                batch = chosen[start:start + 500]
                conn.execute(
                update(nodes).where(nodes.c.id.in_(batch)).values(state=state)
            )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def list_latency(base: str, token: str, requests: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    timings = []
    rng = random.Random(11)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        for _ in range(20):  # warm-up
            api.get("/v1/nodes", params={"state": "available", "class": CLASSES[0], "limit": 100})
        for _ in range(requests):
            params = {"state": rng.choice(["available", "active"]),
                      "class": rng.choice(CLASSES), "limit": 100}
            started = time.perf_counter()
            response = api.get("/v1/nodes", params=params)
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            assert response.json()["items"], "the filter matched nothing"
    return timings


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(label: str, url: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server, base, token = start_server(url, Path(tmp))
        seconds = enrol(base, token, args.nodes, args.threads)
        spread_states(url)
        timings = list_latency(base, token, args.requests)
        server.should_exit = True
        print(f"{label:10s} enrol {args.nodes} nodes: {seconds:6.1f} s "
              f"({args.nodes / seconds:6.0f} nodes/s, {args.threads} client threads) | "
              f"GET /v1/nodes?state&class&limit=100 x{args.requests}: "
              f"p50 {statistics.median(timings):5.1f} ms  p99 {pct(timings, 99):5.1f} ms  "
              f"max {max(timings):5.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.only != "sqlite":
        name = f"mf_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            run("postgresql", args.pg.rsplit("/", 1)[0] + f"/{name}", args)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
