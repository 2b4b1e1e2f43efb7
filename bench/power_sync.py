"""Benchmark: power sync of N emulated BMCs, concurrent sweep vs a sequential 8-worker sweep.

Starts ``--servers`` lab BMC emulator processes (metalfleet.lab's Redfish service, real HTTP
on 127.0.0.1) that together host ``--nodes`` systems, enrolls one ``redfish`` node per
system in a fresh SQLite database, and times full power-sync sweeps through the production
code (conductor/power_sync.py and the sushy-based redfish driver):

1. the first sweep (opens the Redfish sessions, stores every node's first power reading);
2. a steady sweep (nothing changed);
3. a sweep after 1% of the servers were powered on directly on the emulator (the changes
   are detected and recorded as events);
4. the same steady sweep (sessions already open) with 8 workers (``--baseline-workers``),
   what Ironic ships (``[conductor] sync_power_state_workers = 8``), on the same emulators
   in the same run.

Real BMCs are slow (a Redfish GET of a system takes 0.1-1 s on iDRAC and iLO); the
emulator answers in about a millisecond, so each request is held ``--bmc-latency-ms``
(default 100) before it is answered, without using CPU. Each emulator endpoint stands in
for many BMCs, so the per-BMC limit is raised to the worker count here (with one real BMC
per node it is 4 and never binds).

    .venv/bin/python bench/power_sync.py --nodes 10000
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from metalfleet.conductor.power_sync import PowerSync
from metalfleet.config import Settings
from metalfleet.db import models as m
from metalfleet.drivers.registry import get_hardware_type
from metalfleet.server import bootstrap

PASSWORD = "Bench-S3cret-pw"


def serve(count: int, latency_s: float, pipe: Connection) -> None:
    """One emulator process: ``count`` systems behind one Redfish service that takes
    ``latency_s`` to answer each request (without using CPU, as a slow BMC does)."""
    import asyncio
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request
    from starlette.responses import Response

    from metalfleet.lab.bmc_emulator import LabBmcEmulator, LabSystem, start_bmc_server

    systems = [LabSystem.new(f"s{os.getpid()}-{i}", password=PASSWORD, dimm_count=2,
                             nic_count=1) for i in range(count)]
    emulator = LabBmcEmulator(systems, power_delay=0.0)
    server = start_bmc_server(emulator)
    if latency_s > 0:  # before the first request, while the middleware stack can change

        @server.app.middleware("http")
        async def bmc_latency(request: Request,
                              call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            await asyncio.sleep(latency_s)
            return await call_next(request)

    pipe.send((server.base_url, [s.id for s in systems]))
    pipe.recv()  # wait until told to stop
    server.stop()


def start_emulators(nodes: int, servers: int,
                    latency_s: float) -> tuple[list[Any], list[str]]:
    context = mp.get_context("spawn")
    procs, pipes = [], []
    per = [nodes // servers + (1 if i < nodes % servers else 0) for i in range(servers)]
    for count in per:
        ours, theirs = context.Pipe()
        proc = context.Process(target=serve, args=(count, latency_s, theirs), daemon=True)
        proc.start()
        procs.append((proc, ours))
        pipes.append(ours)
    addresses = []
    for pipe in pipes:
        if not pipe.poll(120):
            raise SystemExit("an emulator process did not start within 120 s")
        base_url, ids = pipe.recv()
        addresses += [f"{base_url}/redfish/v1/Systems/{system_id}" for system_id in ids]
    return procs, addresses


def enroll(settings: Settings, addresses: list[str]) -> Any:
    context = bootstrap(settings)
    started = time.monotonic()
    with context.db.session() as session:
        for index, address in enumerate(addresses):
            session.add(m.Node(
                name=f"bmc-{index:05d}", bmc_driver="redfish", bmc_address=address,
                bmc_username="admin", bmc_password_encrypted=context.cipher.encrypt(PASSWORD),
                bmc_verify_tls=False, hardware_type="redfish", state="manageable"))
    print(f"enrolled {len(addresses)} nodes in {time.monotonic() - started:.1f} s")
    return context


def power_on_directly(addresses: list[str], fraction: float) -> int:
    chosen = random.Random(7).sample(addresses, max(1, int(len(addresses) * fraction)))
    with httpx.Client(auth=("admin", PASSWORD), timeout=30) as http:
        for address in chosen:
            answer = http.post(f"{address}/Actions/ComputerSystem.Reset",
                               json={"ResetType": "On"})
            answer.raise_for_status()
    return len(chosen)


def timed(label: str, sync: PowerSync) -> float:
    result = sync.sweep()
    print(f"{label:<44} {result.seconds:7.2f} s  nodes={result.nodes} "
          f"changed={len(result.changed)} errors={result.errors}")
    if result.errors:
        raise SystemExit("BMC errors during the benchmark: the figures would be wrong")
    return result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=8, help="emulator processes")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--baseline-workers", type=int, default=8)
    parser.add_argument("--bmc-latency-ms", type=float, default=100.0,
                        help="time each emulated BMC takes to answer a request")
    args = parser.parse_args()

    print(f"power sync benchmark: {args.nodes} BMCs on {args.servers} emulator processes, "
          f"{args.bmc_latency_ms:g} ms per BMC request, {os.cpu_count()} CPUs")
    procs, addresses = start_emulators(args.nodes, args.servers, args.bmc_latency_ms / 1000)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db")
            context = enroll(settings, addresses)

            def sync(workers: int) -> PowerSync:
                return PowerSync(context.db, context.cipher, conductor="bench",
                                 hardware_types=get_hardware_type, interval_s=0,
                                 max_workers=workers, per_bmc=workers, call_timeout_s=60)

            ours = sync(args.workers)
            timed(f"first sweep, {args.workers} workers (sessions, writes)", ours)
            steady = timed(f"steady sweep, {args.workers} workers", ours)
            flipped = power_on_directly(addresses, 0.01)
            changed = timed(f"sweep after {flipped} outside changes", ours)
            baseline = sync(args.baseline_workers)
            sequential = timed(f"steady sweep, {args.baseline_workers} workers (Ironic)",
                               baseline)
            with context.db.session() as session:
                events = session.scalar(select(func.count()).select_from(m.Event).where(
                    m.Event.message.like("power changed outside metalfleet%")))
            print(f"events 'power changed outside metalfleet': {events}")
            print(f"RESULT nodes={args.nodes} steady={steady:.2f}s with_changes={changed:.2f}s "
                  f"baseline_{args.baseline_workers}_workers={sequential:.2f}s "
                  f"speedup={sequential / steady:.1f}x")
            context.db.dispose()
    finally:
        for proc, pipe in procs:
            with contextlib.suppress(OSError):
                pipe.send("stop")
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


if __name__ == "__main__":
    main()
