"""The CLI against a real slurmctld: configure, push (reconfigure), drain/resume, and Slurm's
power saving calling metalfleet (SuspendProgram/ResumeProgram -> BMC power through a conductor).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from metalfleet.cli.main import app
from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.scheduling.fleet import build, gpu_inventory
from tests.integration.scheduling.slurm_rig import SlurmRig, require_binaries

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
NAMES = ["gpu-r1-01", "gpu-r2-01", "gpu-r2-02"]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the API tests cover both databases; this one is about Slurm."""
    return f"sqlite:///{tmp_path / 'metalfleet.db'}"


@pytest.fixture
def rig() -> Iterator[SlurmRig]:
    require_binaries()
    slurm = SlurmRig(NAMES)
    try:
        yield slurm
    finally:
        slurm.stop()


def setup_cluster(client: TestClient, context: AppContext, rig: SlurmRig) -> None:
    build(client, context, racks=[1, 2],
          inventory=gpu_inventory(gpus=2, sockets=2, cores=8, memory_mib=16000))
    r = client.post("/v1/clusters", json={"name": "hpc", "scheduler": "slurm", "count": 3,
                                          "node_class": "gpu-h100-8x", "tenant": "acme"})
    assert r.status_code == 201, r.text


def cli_runner(live_server: str, admin_token: str) -> tuple[CliRunner, list[str]]:
    return CliRunner(), ["--url", live_server, "--token", admin_token]


def test_configure_push_drain_resume_on_a_real_slurmctld(
    client: TestClient, context: AppContext, rig: SlurmRig, live_server: str, admin_token: str,
    tmp_path: Path,
) -> None:
    setup_cluster(client, context, rig)
    runner, auth = cli_runner(live_server, admin_token)

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, [*auth, *args])
        assert result.exit_code == code, result.output
        return result.output

    site = tmp_path / "site.yaml"
    site.write_text(json.dumps({"slurm": {"site": dataclasses.asdict(rig.site())}}))
    cli("cluster", "configure", "hpc", "--slurm-conf", str(rig.conf), "--slurm-prefix",
        " ".join(rig.nsenter), "--slurm-timeout", "10", "--config", str(site))
    first = cli("cluster", "push", "hpc")
    assert "slurm.conf" in first and "added" in first and "first push" in first
    rig.make_gpu_devices(2)
    rig.start()
    rig.wait_states({name: "idle" for name in NAMES})
    assert rig.control.run("sinfo", "-h", "-o", "%P %l").split() == ["hpc*", "infinite"]

    # Change the partition: push rewrites slurm.conf only and reconfigures the live daemon.
    limit = tmp_path / "limit.yaml"
    limit.write_text("slurm:\n  max_time: '1-00:00:00'\n")
    cli("cluster", "configure", "hpc", "--config", str(limit))
    pushed = json.loads(cli("cluster", "push", "hpc", "-o", "json"))
    assert pushed["files"]["slurm.conf"] == "changed" and pushed["reconfigured"] is True
    assert pushed["files"]["topology.conf"] == "unchanged"
    assert rig.control.run("sinfo", "-h", "-o", "%P %l").split() == ["hpc*", "1-00:00:00"]

    reason = "xid 79: GPU has fallen off the bus"
    assert "drained gpu-r2-01 in slurm" in cli("cluster", "drain", "hpc", "gpu-r2-01",
                                               "--reason", reason)
    rig.wait_states({"gpu-r2-01": "drained"})
    assert rig.control.run("sinfo", "-R", "-h", "-o", "%E|%N").strip() == f"{reason}|gpu-r2-01"
    cli("cluster", "resume", "hpc", "gpu-r2-01")
    rig.wait_states({name: "idle" for name in NAMES})
    assert "not in cluster" in cli("cluster", "drain", "hpc", "nope", "--reason", "x", code=1)

    # A node joining the cluster: files written, restart required, the controller untouched.
    with context.db.session() as session:
        hpc = session.scalar(select(m.Cluster).where(m.Cluster.name == "hpc"))
        gone = next(mb for mb in hpc.members if mb.node_name == "gpu-r2-02") if hpc else None
        assert hpc is not None and gone is not None
        hpc.members.remove(gone)
    shrunk = json.loads(cli("cluster", "push", "hpc", "-o", "json"))
    assert shrunk["nodes_removed"] == ["gpu-r2-02"] and shrunk["restart_required"] is True
    assert "gpu-r2-02" not in rig.conf.read_text()
    rig.control.run("scontrol", "ping")


def test_slurm_power_saving_powers_nodes_off_and_on_through_metalfleet(
    client: TestClient, context: AppContext, rig: SlurmRig, live_server: str, admin_token: str,
    conductor: Conductor, tmp_path: Path,
) -> None:
    setup_cluster(client, context, rig)
    for name in NAMES:
        assert client.post(f"/v1/nodes/{name}/actions/power-on").status_code < 300
    drive(conductor, lambda: all(
        client.get(f"/v1/nodes/{n}").json()["power_state"] == "on" for n in NAMES))
    token_file = tmp_path / "mf.token"
    token_file.write_text(admin_token)
    token_file.chmod(0o600)
    # slurmctld runs in the rig's namespace; the API listens on this process's loopback.
    command = ["nsenter", f"--net=/proc/{os.getpid()}/ns/net", str(BIN / "metalfleet")]
    config = {"slurm": {
        "conf": str(rig.conf), "prefix": list(rig.nsenter), "timeout_s": 10,
        "site": dataclasses.asdict(rig.site()),
        "power_saving": {"api_url": live_server, "token_file": str(token_file),
                         "command": command, "suspend_time_s": 5, "suspend_timeout_s": 5,
                         "resume_timeout_s": 60, "exclude": "gpu-r2-[01-02]"}}}
    r = client.patch("/v1/clusters/hpc", json={"scheduler_config": config})
    assert r.status_code == 200, r.text
    assert client.post("/v1/clusters/hpc/push").status_code == 200
    rig.make_gpu_devices(2)
    rig.start()

    def power(name: str) -> tuple[str, str | None]:
        node = client.get(f"/v1/nodes/{name}").json()
        return node["power_state"], node["target_power_state"]

    # Idle past SuspendTime: slurmctld runs metalfleet-suspend, the conductor powers off.
    drive(conductor, lambda: power("gpu-r1-01") == ("off", None), timeout=60)
    assert power("gpu-r2-01") == ("on", None) and power("gpu-r2-02") == ("on", None)
    events = client.get("/v1/nodes/gpu-r1-01/events").json()["items"]
    assert any("suspend by slurm power saving" in e["message"] for e in events)

    # Slurm wants the node back (a job would, sooner or later; POWER_UP asks now): it runs
    # metalfleet-resume, which powers the node on and waits until it reports power on.
    rig.wait_states({"gpu-r1-01": "idle~"}, timeout=30)  # powered down, SuspendTimeout over
    rig.control.run("scontrol", "update", "NodeName=gpu-r1-01", "State=POWER_UP")
    drive(conductor, lambda: power("gpu-r1-01") == ("on", None), timeout=60)
    events = client.get("/v1/nodes/gpu-r1-01/events").json()["items"]
    assert any("resume by slurm power saving" in e["message"] for e in events)
