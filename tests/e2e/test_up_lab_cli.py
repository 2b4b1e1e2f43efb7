"""As a new user would: `metalfleet up --lab 8`, then the CLI drives a node through its life.

Runs the real console scripts in subprocesses, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.labproc import BIN, Lab

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path, db_url: str) -> Iterator[Lab]:
    running = Lab(tmp_path / "data", db_url)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def wait_all(lab: Lab, state: str, timeout: float = 180) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = lab.nodes()
        if len(nodes) == 8 and all(n["state"] == state for n in nodes):
            return nodes
        failed = [(n["name"], n["state"], n["last_error"]) for n in nodes
                  if n["state"].endswith("-failed")]
        assert not failed, failed
        assert time.monotonic() < deadline, [(n["name"], n["state"]) for n in nodes]
        time.sleep(1)


def test_new_user_tour(lab: Lab) -> None:
    token_file = lab.data_dir / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    nodes = wait_all(lab, "available")
    classes = {n["node_class"] for n in nodes}
    assert classes == {"gpu-h100-8x", "cpu-epyc-2s"}
    assert len({n["rack"] for n in nodes}) >= 2

    deployed = lab.cli("node", "deploy", "lab-gpu-01", "--image", "lab-ubuntu-22.04", "--wait")
    assert "active" in deployed.stdout
    again = lab.cli("node", "deploy", "lab-gpu-01", "--image", "lab-ubuntu-22.04", check=False)
    assert again.returncode == 1 and "409" in again.stderr and "undeploy" in again.stderr

    token = token_file.read_text().strip()
    r = httpx.post(f"{lab.url}/v1/nodes/lab-gpu-01/actions/provide",
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["allowed_actions"] == ["undeploy"]

    undeployed = lab.cli("node", "undeploy", "lab-gpu-01", "--wait")
    assert "available" in undeployed.stdout
    events = json.loads(lab.cli("node", "events", "lab-gpu-01", "-o", "json").stdout)
    path = [e["to_state"] for e in events if e["kind"] == "transition"]
    assert path == ["enrolled", "verifying", "manageable", "inspecting", "inspected",
                    "burning-in", "available", "deploying", "active", "releasing",
                    "cleaning", "available"]

    # A restart keeps the fleet, its BMCs and their port.
    bmc_address = json.loads(lab.cli("node", "show", "lab-gpu-02", "-o", "json").stdout)["bmc"]
    assert lab.stop() == 0
    lab.start()
    after = wait_all(lab, "available", timeout=60)
    assert len(after) == 8
    again_shown = json.loads(lab.cli("node", "show", "lab-gpu-02", "-o", "json").stdout)
    assert again_shown["bmc"]["address"] == bmc_address["address"]
    lab.cli("node", "power", "lab-gpu-02", "on", "--wait")
    shown = json.loads(lab.cli("node", "show", "lab-gpu-02", "-o", "json").stdout)
    assert shown["power_state"] == "on" and shown["bmc"]["error"] is None


def test_cli_errors_are_clear(lab: Lab) -> None:
    missing = lab.cli("node", "show", "nope", check=False)
    assert missing.returncode == 1 and "no node named 'nope'" in missing.stderr
    bad = lab.cli("node", "enroll", "x1", "--bmc-address", "ftp://bmc", check=False)
    assert bad.returncode == 1 and "redfish BMC address starts with" in bad.stderr
    offline = subprocess.run(
        [str(BIN / "metalfleet"), "--url", "http://127.0.0.1:9", "node", "list"],
        capture_output=True, text=True, timeout=60,
    )
    assert offline.returncode == 1 and "metalfleet up" in offline.stderr
