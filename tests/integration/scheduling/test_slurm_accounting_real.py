"""A tenant's QoS on a real Slurm with accounting: MariaDB + slurmdbd + slurmctld in the rig's
namespace. metalfleet's sacctmgr.sh creates the account and QoS, the partition only takes the
tenant's account, and the QoS limits hold jobs back."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metalfleet.core.errors import MetalfleetError
from metalfleet.runtime import AppContext
from tests.integration.scheduling.fleet import build, gpu_inventory
from tests.integration.scheduling.slurm_rig import SlurmRig, require_binaries

pytestmark = pytest.mark.slow
NAMES = ["gpu-r1-01", "gpu-r1-02"]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: this test is about Slurm's side."""
    return f"sqlite:///{tmp_path / 'metalfleet.db'}"


@pytest.fixture
def rig() -> Iterator[SlurmRig]:
    require_binaries()
    slurm = SlurmRig(NAMES)
    try:
        yield slurm
    finally:
        slurm.stop()


def test_tenant_partition_and_qos_with_slurmdbd(
    client: TestClient, context: AppContext, rig: SlurmRig,
) -> None:
    build(client, context, racks=[2],
          inventory=gpu_inventory(gpus=2, sockets=1, cores=4, memory_mib=8000))
    r = client.post("/v1/clusters", json={"name": "hpc", "scheduler": "slurm", "count": 2,
                                          "node_class": "gpu-h100-8x", "tenant": "acme"})
    assert r.status_code == 201, r.text
    config = {"slurm": {
        "conf": str(rig.conf), "prefix": list(rig.nsenter), "timeout_s": 10,
        "site": dataclasses.asdict(rig.accounting_site()),
        "qos": {"priority": 10, "grp_tres": "cpu=8", "max_wall": "01:00:00"}}}
    r = client.patch("/v1/clusters/hpc", json={"scheduler_config": config})
    assert r.status_code == 200, r.text
    pushed = client.post("/v1/clusters/hpc/push").json()
    assert pushed["files"]["sacctmgr.sh"] == "added"
    assert "AllowAccounts=acme AllowQos=acme" in rig.conf.read_text()
    rig.make_gpu_devices(2)

    def accounts() -> None:
        done = subprocess.run([*rig.nsenter, str(rig.conf.parent / "sacctmgr.sh")],
                              env={**os.environ, "SLURM_CONF": str(rig.conf)},
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def first_time() -> None:
        accounts()
        # Users are the site's business (LDAP...): the test's user joins the tenant's account.
        rig.control.run("sacctmgr", "-i", "add", "user", "root", "account=acme")

    rig.start(accounting=True, before_controller=first_time)
    rig.wait_states({name: "idle" for name in NAMES})
    qos = rig.control.run("sacctmgr", "-n", "-P", "show", "qos", "acme",
                          "format=name,priority,grptres,maxwall")
    assert qos.strip() == "acme|10|cpu=8|01:00:00"
    # The account's default QoS is the tenant's: a job of the tenant runs across the nodes.
    out = rig.control.run("srun", "-A", "acme", "-N2", "printenv", "SLURM_JOB_QOS")
    assert out.split() == ["acme", "acme"]
    with pytest.raises(MetalfleetError, match="Invalid account"):
        rig.control.run("sbatch", "-A", "other", "--wrap", "true")
    # More CPUs than the tenant's GrpTRES: accepted, held by the QoS.
    job = rig.control.run("sbatch", "--parsable", "-A", "acme", "-n", "16", "--wrap", "true")
    deadline = time.monotonic() + 30
    reason = "None"  # until the scheduler has looked at the job
    while reason == "None" and time.monotonic() < deadline:
        time.sleep(0.5)
        reason = rig.control.run("squeue", "-h", "-j", job.strip(), "-o", "%r").strip()
    assert reason == "QOSGrpCpuLimit"
    # Running the script again changes nothing and still succeeds (idempotent).
    accounts()
    assert rig.control.run("sacctmgr", "-n", "-P", "show", "qos", "acme",
                           "format=name,priority,grptres,maxwall").strip() == qos.strip()
