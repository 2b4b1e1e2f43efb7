"""Benchmark: a GPU fault on an allocated lab node, from injection to healed, through the API.

Starts `metalfleet up --lab N` (SQLite, its own data dir and port), waits until the lab is
available, creates a cluster of 2 GPU nodes and deploys them, then for each round injects a
gpu-xid fault on a member through POST /v1/lab/faults and times, from the moment the POST
returned, with the server's own event timestamps (no polling error): health failed,
maintenance on (the drain point: the lab cluster has scheduler none, so no scheduler call is
made — bench/health_remediation.py times a Slurm drain), ticket opened, the spare joined the
cluster and reached active (a real lab deploy: agent code, emulated BMC); then after
DELETE /v1/lab/faults: the node re-validated (an acceptance run) and back to available.

    .venv/bin/python bench/lab_fault_healing.py --lab 8 --rounds 3

The lab's in-band health loop sweeps every lab_health_interval_s (1 s) and the engine ticks
every health_tick_s (2 s); both bound what is measured and are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(what: str, check: Callable[[], bool], timeout: float, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout} s")
        time.sleep(step)


def when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.post(path, json=body)
        if r.status_code >= 400:
            raise SystemExit(f"POST {path}: {r.status_code} {r.text}")
        return r.json()

    def delete(self, path: str) -> None:
        self.http.delete(path).raise_for_status()

    def state(self, name: str) -> str:
        return str(self.get(f"/v1/nodes/{name}")["state"])

    def first_event(self, node: str, since: float, kind: str,
                    match: Callable[[dict[str, Any]], bool] = lambda _e: True) -> float:
        """Server time of the node's first ``kind`` event at or after ``since`` that matches."""
        start = datetime.fromtimestamp(since, UTC).isoformat()
        for event in self.get("/v1/events", node=node, kind=kind, since=start,
                              limit=1000)["items"]:
            if match(event):
                return when(event["time"])
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        port = free_port()
        log = Path(scratch) / "up.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN / "metalfleet"), "up", "--lab", str(args.lab), "--port", str(port),
                 "--data-dir", str(data_dir)], stdout=out, stderr=subprocess.STDOUT)
        try:
            run(f"http://127.0.0.1:{port}", data_dir, args.lab, args.rounds)
        except BaseException:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def run(url: str, data_dir: Path, size: int, rounds: int) -> None:
    wait("metalfleet up", lambda: _answers(url), 60, 0.3)
    api = Api(url, (data_dir / "admin.token").read_text().strip())
    wait("the lab to be available", lambda: sum(
        n["state"] == "available" for n in api.get("/v1/nodes", limit=1000)["items"]) == size,
        300, 0.5)
    gpu_class = next(n["node_class"] for n in api.get("/v1/nodes", limit=1000)["items"]
                     if n["name"].startswith("lab-gpu"))
    cluster = api.post("/v1/clusters", {"name": "train", "node_class": gpu_class, "count": 2,
                                        "scheduler": "none"})
    members = [n["name"] for n in cluster["nodes"]]
    image = "lab-ubuntu-22.04"  # what `up --lab` registers (lab/image.py)
    for name in members:
        api.post(f"/v1/nodes/{name}/actions/deploy", {"image": image})
    wait("the cluster to be deployed", lambda: all(api.state(n) == "active" for n in members),
         120)
    figures: dict[str, list[float]] = {k: [] for k in (
        "failed", "maintenance", "ticket", "spare active", "re-validated, available")}
    for round_no in range(rounds):
        victim, spare = one_round(api, figures)
        print(f"round {round_no + 1}: {victim} -> spare {spare}: " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in figures.items()), flush=True)
    print(json.dumps({k: {"median_s": round(statistics.median(v), 3),
                          "max_s": round(max(v), 3)} for k, v in figures.items()}, indent=1))
    print("lab_health_interval_s 1.0, health_tick_s 2.0, bmc_health_interval_s 5 (lab), "
          f"{os.cpu_count()} cores")


def one_round(api: Api, figures: dict[str, list[float]]) -> tuple[str, str]:
    victim = api.get("/v1/clusters/train")["nodes"][0]["name"]
    start = time.time()
    api.post("/v1/lab/faults", {"node": victim, "kind": "gpu-xid", "component": "GPU3"})
    wait("maintenance", lambda: bool(api.get(f"/v1/nodes/{victim}/health")["maintenance"]),
         30, 0.05)
    ticket = api.get(f"/v1/nodes/{victim}/health")["ticket"]
    spare = str(ticket["replacement_node"])
    wait("the spare active", lambda: api.state(spare) == "active", 120)
    spare_active = time.time()
    failed_at = api.first_event(victim, start, "health", lambda e: "failed" in e["message"])
    figures["failed"].append(failed_at - start)
    figures["maintenance"].append(api.first_event(victim, start, "maintenance") - start)
    figures["ticket"].append(when(ticket["opened_at"]) - start)
    figures["spare active"].append(spare_active - start)
    wait("the failed node cleaned", lambda: api.state(victim) == "available", 120)
    cleared = time.time()
    api.delete(f"/v1/lab/faults/{victim}")
    wait("re-validation", lambda: not api.get(f"/v1/nodes/{victim}/health")["maintenance"],
         120, 0.2)
    figures["re-validated, available"].append(time.time() - cleared)
    return victim, spare


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
