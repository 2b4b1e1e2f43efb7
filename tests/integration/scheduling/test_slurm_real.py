"""A tenant's Slurm cluster on a real slurmctld and three slurmd: the rendered config is
accepted, a job runs across the nodes, a drain from metalfleet shows in sinfo, resume clears it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from metalfleet.scheduling import allocation, render
from metalfleet.scheduling.slurm import control, sync
from tests.integration.scheduling.fleet import build, gpu_inventory
from tests.integration.scheduling.slurm_rig import SlurmRig, require_binaries

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the Slurm side does not depend on the database (the API tests cover both)."""
    return f"sqlite:///{tmp_path / 'metalfleet.db'}"


@pytest.fixture
def rig() -> Iterator[SlurmRig]:
    require_binaries()
    names = ["gpu-r1-01", "gpu-r2-01", "gpu-r2-02"]
    slurm = SlurmRig(names)
    try:
        yield slurm
    finally:
        slurm.stop()


def test_rendered_config_runs_jobs_and_drains(
    client: TestClient, context: AppContext, rig: SlurmRig,
) -> None:
    inventory = gpu_inventory(gpus=2, sockets=2, cores=8, memory_mib=16000)
    build(client, context, racks=[1, 2], inventory=inventory)
    r = client.post("/v1/clusters", json={"name": "hpc", "scheduler": "slurm", "count": 3,
                                          "node_class": "gpu-h100-8x", "tenant": "acme"})
    assert r.status_code == 201, r.text
    site = rig.site()
    rig.make_gpu_devices(2)
    with context.db.session() as session:
        cluster = allocation.load_cluster(session, "hpc")
        render.render_slurm(session, cluster, rig.conf.parent, site)
    assert "Gres=gpu:2" in rig.conf.read_text()

    rig.start()
    rig.wait_states({name: "idle" for name in rig.node_names})
    out = rig.control.run("srun", "-N3", "--gres=gpu:2", "printenv", "SLURMD_NODENAME")
    assert sorted(out.split()) == rig.node_names
    topology = rig.control.run("scontrol", "show", "topology")
    assert "SwitchName=ib-spine" in topology and "SwitchName=ib-leaf-2" in topology

    reason = "xid 79: GPU has fallen off the bus"
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "gpu-r2-01"))
        assert node is not None
        control.drain(node, reason, rig.control, session=session, actor="health")
    assert reason in rig.control.run("sinfo", "-R", "-h", "-o", "%E|%N")
    rig.wait_states({"gpu-r2-01": "drained"})
    events = client.get("/v1/nodes/gpu-r2-01/events").json()["items"]
    assert any(e["kind"] == "scheduler" and reason in e["message"] for e in events)

    control.resume("gpu-r2-01", rig.control)
    rig.wait_states({name: "idle" for name in rig.node_names})
    assert rig.control.run("sinfo", "-R", "-h").strip() == ""

    # A health event in the fleet drains the node in Slurm; recovery resumes it.
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "gpu-r1-01"))
        assert node is not None
        node.health, node.last_error = "failed", "ECC uncorrectable errors on GPU 3"
        session.flush()
        cluster = allocation.load_cluster(session, "hpc")
        assert sync.sync_drains(session, cluster, rig.control) == {"gpu-r1-01": "drain"}
    rig.wait_states({"gpu-r1-01": "drained"})
    assert "metalfleet: health failed: ECC uncorrectable errors on GPU 3" in rig.control.run(
        "sinfo", "-R", "-h", "-o", "%E")
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "gpu-r1-01"))
        assert node is not None
        node.health, node.last_error = "ok", None
        session.flush()
        cluster = allocation.load_cluster(session, "hpc")
        assert sync.sync_drains(session, cluster, rig.control) == {"gpu-r1-01": "resume"}
        assert sync.sync_drains(session, cluster, rig.control) == {}
    rig.wait_states({name: "idle" for name in rig.node_names})
