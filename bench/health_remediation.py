"""Benchmark: time from a health report to drained, ticket open and spare requested.

In-process like the lab: the API app, a conductor on the fake driver, a GPU fleet of R racks
(one IB leaf each) with a deployed Slurm cluster. Slurm is reached through a stand-in for
``ssh head`` (a shell script), so the drain includes spawning a process, as a real
``scontrol`` would. Each round reports a critical gpu-xid Finding for one active member via
health.intake.report and times, from the call: drained (hooks.drain returned), maintenance
on, ticket open, spare's deploy requested, committed; then the conductor runs until the
spare is active (the fake driver deploys instantly: this is control-plane time only).

    .venv/bin/python bench/health_remediation.py --racks 4 --per-rack 16 --cluster 32 --faults 12
    .venv/bin/python bench/health_remediation.py --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import asyncio
import stat
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from metalfleet.api.app import create_app
from metalfleet.conductor.worker import Conductor
from metalfleet.config import Settings
from metalfleet.core.states import Action
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.health import intake, remediation, tickets
from metalfleet.health.findings import Finding
from metalfleet.inventory import lifecycle
from metalfleet.inventory.lifecycle import load_node
from metalfleet.scheduling import hooks
from metalfleet.server import bootstrap

GPU_CLASS = "gpu-h100-8x"
marks: dict[str, float] = {}


def timed(name: str, fn: Callable[..., Any], only: Callable[..., bool] | None = None
          ) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if name not in marks and (only is None or only(*args, **kwargs)):
            marks[name] = time.perf_counter()
        return result
    return wrapper


def instrument() -> None:
    """Wrap each remediation step to note when it returns (the first call per round)."""
    def deploy_only(_session: Any, _node: Any, action: Action, **_kw: Any) -> bool:
        return action is Action.DEPLOY

    steps: list[tuple[Any, str, str, Callable[..., bool] | None]] = [
        (hooks, "drain", "drained", None),
        (remediation, "set_maintenance", "maintenance", None),
        (tickets, "open_ticket", "ticket", None),
        (lifecycle, "request_action", "spare requested", deploy_only),
    ]
    for module, attr, name, only in steps:
        setattr(module, attr, timed(name, getattr(module, attr), only))


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def build(client: TestClient, racks: int, per_rack: int) -> None:
    post(client, "/v1/sites", {"name": "s1"})
    post(client, "/v1/node-classes", {"name": GPU_CLASS, "gpu_count": 8})
    post(client, "/v1/tenants", {"name": "acme"})
    post(client, "/v1/images", {"name": "img", "location": "http://images.example/g.raw"})
    for r in range(1, racks + 1):
        post(client, "/v1/racks", {"name": f"rack-{r}", "site": "s1"})
        post(client, "/v1/switches", {"name": f"ib-leaf-{r}", "rack": f"rack-{r}",
                                      "role": "leaf", "fabric": "infiniband"})
        for i in range(1, per_rack + 1):
            name = f"gpu-r{r}-{i:02d}"
            post(client, "/v1/nodes", {
                "name": name, "rack": f"rack-{r}", "node_class": GPU_CLASS,
                "bmc": {"driver": "fake", "address": f"fake://{name}"},
                "ports": [{"name": "ib0", "mac": f"52:54:00:01:{r:02x}:{i:02x}", "pxe": True,
                           "switch": f"ib-leaf-{r}", "switch_port": f"p{i}"}]})


def run_until(conductor: Conductor, done: Callable[[], bool], timeout: float = 120) -> float:
    start = time.perf_counter()

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while not (not conductor._running and await asyncio.to_thread(done)):
            await conductor.tick()
            await asyncio.sleep(0.005)
            if time.monotonic() > deadline:
                raise TimeoutError("conductor did not finish in time")
        await conductor.drain()

    asyncio.run(loop())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racks", type=int, default=4)
    parser.add_argument("--per-rack", type=int, default=16)
    parser.add_argument("--cluster", type=int, default=32)
    parser.add_argument("--faults", type=int, default=12)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mf-bench-health-"))
    settings = Settings(data_dir=tmp, database_url=args.database_url
                        or f"sqlite:///{tmp / 'metalfleet.db'}", poll_interval_s=0.01)
    context = bootstrap(settings)
    token = (tmp / "admin.token").read_text().strip()
    head = tmp / "fake-head"
    head.write_text(f'#!/bin/sh\necho "$@" >> {tmp / "scontrol.log"}\n')
    head.chmod(head.stat().st_mode | stat.S_IEXEC)
    conductor = Conductor(context.db, context.cipher, name="bench", workers=16,
                          poll_interval_s=0.01, health_tick_s=0)
    with TestClient(create_app(context)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        build(client, args.racks, args.per_rack)
        with context.db.session() as session:
            session.execute(update(m.Node).values(state="available"))
        cluster = post(client, "/v1/clusters", {"name": "train", "node_class": GPU_CLASS,
                                                "count": args.cluster, "tenant": "acme",
                                                "scheduler": "slurm"})
        with context.db.session() as session:
            row = session.scalar(select(m.Cluster).where(m.Cluster.name == "train"))
            assert row is not None
            row.scheduler_config = {"slurm": {"prefix": [str(head)], "timeout_s": 5}}
        members = [n["name"] for n in cluster["nodes"]]
        for name in members:
            client.post(f"/v1/nodes/{name}/actions/deploy", json={"image": "img"})

        def all_active() -> bool:
            with context.db.session() as session:
                return all(s == "active" for s in session.scalars(
                    select(m.Node.state).join(m.ClusterNode)))

        run_until(conductor, all_active)
        instrument()
        rows: dict[str, list[float]] = {}
        for victim in members[:args.faults]:
            marks.clear()
            start = time.perf_counter()
            with context.db.session() as session:
                intake.report(session, load_node(session, victim), "agent", [Finding(
                    "gpu-xid", "GPU3", "critical", "Xid 79: GPU has fallen off the bus")],
                    actor="bench")
            marks["committed"] = time.perf_counter()
            with context.db.session() as session:
                spare = session.scalar(select(hm.RepairTicket.replacement_node)
                                       .where(hm.RepairTicket.node_name == victim))

            def spare_active(spare: str | None = spare) -> bool:
                with context.db.session() as session:
                    return session.scalar(select(m.Node.state)
                                          .where(m.Node.name == spare)) == "active"

            if spare is not None:
                run_until(conductor, spare_active)
                marks["spare active"] = time.perf_counter()
            for name, at in marks.items():
                rows.setdefault(name, []).append((at - start) * 1000)
        print(f"{settings.resolved_database_url().split(':')[0]}: {args.racks * args.per_rack} "
              f"nodes, cluster of {args.cluster}, {args.faults} faults (ms from report)")
        for name in ("drained", "maintenance", "ticket", "spare requested", "committed",
                     "spare active"):
            values = rows.get(name, [])
            if values:
                print(f"  {name:16s} p50 {statistics.median(values):8.1f}   "
                      f"max {max(values):8.1f}   (n={len(values)})")
    context.db.dispose()


if __name__ == "__main__":
    main()
