"""A GPU fleet on the fake driver with a deployed cluster, for the health engine's tests.

The nodes are the scheduling tests' fleet (tests/integration/scheduling/fleet.py: racks,
IB leaves); the cluster's scheduler is Slurm reached through a recording stand-in for
``ssh head`` (SlurmControl's prefix), so drain and resume are real hook calls whose
command lines the tests read back.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.health import intake
from metalfleet.health.findings import Finding
from metalfleet.inventory.lifecycle import load_node
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.scheduling.fleet import GPU_CLASS, build, post

IMAGE = "ubuntu-gpu"


def recording_prefix(tmp_path: Path) -> tuple[list[str], Path]:
    """A stand-in for ``ssh head``: appends its arguments to a log and succeeds."""
    log = tmp_path / "scontrol.log"
    script = tmp_path / "fake-head"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script)], log


def states(context: AppContext, names: list[str]) -> dict[str, str]:
    with context.db.session() as session:
        rows = session.execute(select(m.Node.name, m.Node.state)
                               .where(m.Node.name.in_(names))).all()
    return {name: state for name, state in rows}


def deployed_cluster(client: TestClient, context: AppContext, conductor: Conductor,
                     tmp_path: Path, *, racks: list[int], count: int = 2,
                     constraints: dict[str, Any] | None = None, scheduler: str = "slurm"
                     ) -> tuple[list[str], list[str], Path]:
    """(all node names, the cluster's members, the scontrol log); members are active."""
    names = build(client, context, racks)
    post(client, "/v1/images", {"name": IMAGE, "location": "http://images.example/g.raw"})
    cluster = post(client, "/v1/clusters", {
        "name": "train", "node_class": GPU_CLASS, "count": count, "tenant": "acme",
        "scheduler": scheduler, "constraints": constraints or {}})
    members = [n["name"] for n in cluster["nodes"]]
    prefix, log = recording_prefix(tmp_path)
    with context.db.session() as session:
        row = session.scalar(select(m.Cluster).where(m.Cluster.name == "train"))
        assert row is not None
        row.scheduler_config = {"slurm": {"prefix": prefix, "timeout_s": 5}}
    for name in members:
        r = client.post(f"/v1/nodes/{name}/actions/deploy", json={"image": IMAGE})
        assert r.status_code == 202, r.text
    drive(conductor, lambda: all(s == "active" for s in states(context, members).values()))
    return names, members, log


def report(context: AppContext, name: str, findings: list[Finding],
           checks_run: list[str] | None = None, source: str = "agent") -> None:
    with context.db.session() as session:
        intake.report(session, load_node(session, name), source, findings,
                      checks_run=checks_run, actor="test")


XID = Finding("gpu-xid", "GPU3", "critical", "Xid 79: GPU has fallen off the bus",
              {"xid": 79, "pci_bus_id": "0000:1b:00.0"})
