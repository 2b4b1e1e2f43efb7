"""`metalfleet slurm suspend|resume` (Slurm's power-saving programs) and `metalfleet ansible`
against a live API; the conductor carries out the power changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app
from metalfleet.conductor.worker import Conductor
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.scheduling.fleet import GPU_CLASS, build

BIN = Path(sys.executable).parent


def test_slurm_suspend_and_resume_wait_for_the_bmc(
    client: TestClient, context: AppContext, live_server: str, admin_token: str,
    conductor: Conductor,
) -> None:
    build(client, context, racks=[3])
    r = client.post("/v1/clusters", json={"name": "hpc", "scheduler": "slurm", "count": 2,
                                          "node_class": GPU_CLASS, "tenant": "acme"})
    assert r.status_code == 201
    runner = CliRunner()
    auth = ["--url", live_server, "--token", admin_token]

    out = runner.invoke(app, [*auth, "slurm", "suspend", "gpu-r1-[01-02]", "--cluster", "hpc"])
    assert out.exit_code == 0 and "power off requested for gpu-r1-[01-02]" in out.output
    assert client.get("/v1/nodes/gpu-r1-02").json()["target_power_state"] == "off"
    drive(conductor, lambda: client.get("/v1/nodes/gpu-r1-02").json()["target_power_state"]
          is None)

    # Nobody carries the power on out: resume gives up after its timeout, non-zero.
    out = runner.invoke(app, [*auth, "slurm", "resume", "gpu-r1-01", "--cluster", "hpc",
                              "--timeout", "1", "--interval", "0.2"])
    assert out.exit_code == 1 and "gpu-r1-01 not powered on within 1 s" in out.output
    out = runner.invoke(app, [*auth, "slurm", "resume", "gpu-r1-03", "--cluster", "hpc"])
    assert out.exit_code == 1 and "not in cluster 'hpc'" in out.output

    resume = subprocess.Popen(
        [str(BIN / "metalfleet"), *auth, "slurm", "resume", "gpu-r1-[01-02]", "--cluster",
         "hpc", "--timeout", "60", "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        drive(conductor, lambda: resume.poll() is not None, timeout=90)
        output = resume.communicate(timeout=10)[0]
    finally:
        resume.kill()
    assert resume.returncode == 0, output
    assert "gpu-r1-[01-02] powered on" in output
    assert all(client.get(f"/v1/nodes/gpu-r1-0{i}").json()["power_state"] == "on"
               for i in (1, 2))


def test_ansible_commands(
    client: TestClient, context: AppContext, live_server: str, admin_token: str, tmp_path: Path,
) -> None:
    build(client, context, racks=[1])
    runner = CliRunner()
    auth = ["--url", live_server, "--token", admin_token]
    out = runner.invoke(app, [*auth, "ansible", "inventory", "--list"])
    assert out.exit_code == 0 and '"role_gpu"' in out.output
    out = runner.invoke(app, ["ansible", "playbooks", "--dir", str(tmp_path / "pb")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "pb" / "gpu-node.yml").exists()
    assert (tmp_path / "pb" / "roles" / "gpu_tuning" / "tasks" / "main.yml").exists()
    # A file the site changed is not overwritten without --force.
    (tmp_path / "pb" / "gpu-node.yml").write_text("# mine\n")
    out = runner.invoke(app, ["ansible", "playbooks", "--dir", str(tmp_path / "pb")])
    assert out.exit_code == 1 and "--force" in out.output
    assert (tmp_path / "pb" / "gpu-node.yml").read_text() == "# mine\n"
    out = runner.invoke(app, ["ansible", "playbooks", "--dir", str(tmp_path / "pb"), "--force"])
    assert out.exit_code == 0 and "hosts:" in (tmp_path / "pb" / "gpu-node.yml").read_text()
