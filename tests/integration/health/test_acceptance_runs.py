"""Acceptance runs stored per burn-in, through the real conductor and the agent's code.

The nodes run the lab's in-process agent (agent_local: inspect and burn-in on a synthetic
hardware root with the lab's synthetic NVML json); power and boot are the fake driver's, so
the test spends its time in the acceptance steps, not in a BMC emulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app
from metalfleet.conductor.worker import Conductor
from metalfleet.drivers import agent_local, fake
from metalfleet.drivers.base import HardwareType
from metalfleet.health import acceptance
from metalfleet.inventory.lifecycle import load_node
from metalfleet.lab.synthetic_hardware import build_root, gpu_node_spec
from metalfleet.runtime import AppContext, LabAllowance
from tests.conftest import drive, fake_node

GPU_CLASS = "gpu-h100-8x"
GPU_PERF = ("gpu-compute", "gpu-memory-bandwidth", "gpu-p2p", "host-to-device")


@pytest.fixture
def lab_conductor(context: AppContext, lab_enabled: LabAllowance) -> Conductor:
    """The agent's code in-process on synthetic roots: a lab process (roots in its folder)."""
    root = lab_enabled.root
    hw = HardwareType(
        name="lab-local", power=fake.FakePower(), boot=fake.FakeBoot(),
        management=fake.FakeManagement(), inspect=agent_local.AgentLocalInspect(root),
        burn_in=agent_local.AgentLocalBurnIn(root), deploy=agent_local.AgentLocalDeploy(root),
        clean=agent_local.AgentLocalClean(root))
    return Conductor(context.db, context.cipher, name="acceptance-conductor", workers=2,
                     poll_interval_s=0.02, heartbeat_interval_s=0.5, hardware_types=lambda _: hw)


def enrol(client: TestClient, tmp_path: Path, name: str, index: int,
          node_class: str = GPU_CLASS) -> Path:
    lab_folder = tmp_path / "data" / "lab"  # the conftest's data dir; a lab process's folder
    root = build_root(lab_folder / name, gpu_node_spec(index))
    body = fake_node(name, f"52:54:00:aa:00:{index:02x}", node_class=node_class,
                     driver_info={"hardware_root": str(root), "burn_in_seconds": 0.2})
    assert client.post("/v1/nodes", json=body).status_code == 201
    return root


def act(client: TestClient, conductor: Conductor, name: str, action: str, want: str) -> None:
    r = client.post(f"/v1/nodes/{name}/actions/{action}")
    assert r.status_code == 202, r.text

    def landed() -> bool:
        node = client.get(f"/v1/nodes/{name}").json()
        return node["reservation"] is None and node["state"] not in ("verifying", "inspecting",
                                                                     "burning-in")

    drive(conductor, landed, timeout=60)
    node = client.get(f"/v1/nodes/{name}").json()
    assert node["state"] == want, node["last_error"]


def runs(client: TestClient, name: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/v1/nodes/{name}/acceptance-runs", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in run["results"]}


def make_available(client: TestClient, conductor: Conductor, name: str) -> None:
    act(client, conductor, name, "manage", "manageable")
    act(client, conductor, name, "inspect", "inspected")
    act(client, conductor, name, "provide", "available")


def test_burn_in_stores_runs_and_a_missing_gpu_fails_validate(
    client: TestClient, context: AppContext, lab_conductor: Conductor, tmp_path: Path,
) -> None:
    assert client.post("/v1/node-classes", json={
        "name": GPU_CLASS, "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8,
        "ib_ports": 8, "ib_rate_gbps": 400}).status_code == 201
    root = enrol(client, tmp_path, "n1", 1)
    make_available(client, lab_conductor, "n1")

    [first] = runs(client, "n1")
    assert (first["reason"], first["passed"], first["node_class"]) == ("burn-in", True, GPU_CLASS)
    assert first["finished_at"] is not None
    result = steps(first)
    assert result["gpu-inventory"]["status"] == "pass"
    assert result["gpu-inventory"]["measured"] == 8
    assert all(result[s]["status"] == "not-applicable" and result[s]["measured"] is None
               for s in GPU_PERF)
    assert result["gpu-compute"]["spec"] == 989  # the class's model, from the data sheet
    with context.db.session() as session:
        info = load_node(session, "n1").driver_info
    assert info["last_burn_in"]["acceptance_run"] == first["id"]
    assert "acceptance_plan" not in info  # handed to the driver, never stored on the node

    # Pull a GPU out of the synthetic NVML answers (as the lab's gpu-missing fault does).
    nvml = root / "run/metalfleet/nvml.json"
    data = json.loads(nvml.read_text())
    data["devices"] = data["devices"][:7]
    nvml.write_text(json.dumps(data))
    act(client, lab_conductor, "n1", "validate", "burnin-failed")
    node = client.get("/v1/nodes/n1").json()
    assert node["last_error"].startswith(
        "acceptance failed: gpu-inventory measured 7 GPUs, threshold 8 GPUs")
    failed = runs(client, "n1")[0]
    assert failed["passed"] is False and failed["reason"] == "burn-in"
    assert steps(failed)["gpu-inventory"]["status"] == "fail"
    assert steps(failed)["cpu"]["status"] == "pass"  # every step still ran and was stored
    shown = client.get(f"/v1/acceptance-runs/{failed['id']}").json()
    assert shown["results"] == failed["results"] and shown["plan"]["node_class"] == GPU_CLASS

    # Repaired, in maintenance (as the health engine re-validates): a "revalidation" run.
    nvml.write_text(json.dumps({**data, "devices": [*data["devices"], data["devices"][0]]}))
    r = client.post("/v1/nodes/n1/actions/validate")
    assert r.status_code == 202, r.text
    with context.db.session() as session:
        row = load_node(session, "n1")
        row.maintenance, row.maintenance_reason = True, "health: gpu-missing on GPU7"
    drive(lab_conductor, lambda: client.get("/v1/nodes/n1").json()["state"] == "available",
          timeout=60)
    again = runs(client, "n1")
    assert [r["reason"] for r in again] == ["revalidation", "burn-in", "burn-in"]
    assert [r["passed"] for r in again] == [True, False, True]
    with context.db.session() as session:
        node_id = load_node(session, "n1").id
        latest = acceptance.latest_run(session, node_id)
        assert latest is not None and latest.id == again[0]["id"]
        burn_in = acceptance.latest_run(session, node_id, "burn-in")
        assert burn_in is not None and burn_in.id == failed["id"]
        assert acceptance.latest_run(session, "no-such-node") is None

    # newest first, one per page
    page = client.get("/v1/nodes/n1/acceptance-runs", params={"limit": 1}).json()
    walked = [page["items"][0]["id"]]
    while page["next"]:
        page = client.get("/v1/nodes/n1/acceptance-runs",
                          params={"limit": 1, "cursor": page["next"]}).json()
        walked += [item["id"] for item in page["items"]]
    assert walked == [r["id"] for r in again]
    assert [r["id"] for r in runs(client, "n1", reason="revalidation")] == [again[0]["id"]]


def test_plan_api_cli_and_errors(
    client: TestClient, context: AppContext, lab_conductor: Conductor, tmp_path: Path,
    live_server: str, admin_token: str,
) -> None:
    assert client.post("/v1/node-classes", json={
        "name": GPU_CLASS, "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8,
        "extra": {"acceptance": {"gpu_tflops": 800, "threshold": 0.9}}}).status_code == 201
    plan = client.get(f"/v1/node-classes/{GPU_CLASS}/acceptance-plan").json()
    compute = next(s for s in plan["steps"] if s["step"] == "gpu-compute")
    assert (compute["spec"], compute["threshold"], compute["fraction"]) == (800, 720, 0.9)

    missing = client.get("/v1/node-classes/nope/acceptance-plan")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/acceptance-runs/nope").status_code == 404
    assert client.get("/v1/nodes/ghost/acceptance-runs").status_code == 404

    # A class whose overrides are broken fails the burn-in, saying what to fix, run stored.
    assert client.post("/v1/node-classes", json={
        "name": "broken", "extra": {"acceptance": {"threshold": 2}}}).status_code == 201
    enrol(client, tmp_path, "b1", 2, node_class="broken")
    act(client, lab_conductor, "b1", "manage", "manageable")
    act(client, lab_conductor, "b1", "inspect", "inspected")
    act(client, lab_conductor, "b1", "provide", "burnin-failed")
    assert "threshold is a fraction" in client.get("/v1/nodes/b1").json()["last_error"]
    [run] = runs(client, "b1")
    assert run["passed"] is False and "threshold is a fraction" in run["results"][0]["detail"]
    bad = client.get("/v1/node-classes/broken/acceptance-plan")
    assert bad.status_code == 422 and "threshold is a fraction" in bad.json()["detail"]

    enrol(client, tmp_path, "n2", 3)
    make_available(client, lab_conductor, "n2")
    bad_cursor = client.get("/v1/nodes/n2/acceptance-runs", params={"cursor": "not-ours"})
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.json()["detail"]
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", admin_token, *args])
        assert result.exit_code == 0, result.output
        return result.output

    table = cli("acceptance", "last", "n2")
    assert "burn-in run" in table and "passed" in table
    assert "gpu-inventory: 8 GPU(s) via NVML" in table
    assert "gpu-compute: a synthetic hardware root" in table
    listed = json.loads(cli("acceptance", "runs", "n2", "-o", "json"))
    assert [r["reason"] for r in listed] == ["burn-in"]
    shown = json.loads(cli("acceptance", "show", listed[0]["id"], "-o", "json"))
    assert shown["id"] == listed[0]["id"] and len(shown["results"]) == 11
    assert "gpu-compute" in cli("acceptance", "plan", GPU_CLASS)
    missing_node = runner.invoke(app, ["--url", live_server, "--token", admin_token,
                                       "acceptance", "last", "ghost"])
    assert missing_node.exit_code == 1 and "404" in missing_node.output


def test_fake_driver_burn_in_records_one_summary_step(
    client: TestClient, conductor: Conductor,
) -> None:
    body = fake_node("f1", "52:54:00:bb:00:01")
    assert client.post("/v1/nodes", json=body).status_code == 201
    for action, want in (("manage", "manageable"), ("inspect", "inspected"),
                         ("provide", "available")):
        act(client, conductor, "f1", action, want)
    [run] = runs(client, "f1")
    assert run["passed"] is True and run["node_class"] is None
    assert [s["step"] for s in run["results"]] == ["burn-in"]
    assert "reports no per-step results" in run["results"][0]["detail"]

    body = fake_node("f2", "52:54:00:bb:00:02", driver_info={"fail": "burn-in"})
    assert client.post("/v1/nodes", json=body).status_code == 201
    for action, want in (("manage", "manageable"), ("inspect", "inspected"),
                         ("provide", "burnin-failed")):
        act(client, conductor, "f2", action, want)
    [failed] = runs(client, "f2")
    assert failed["passed"] is False
    assert failed["results"][0]["detail"] == "fake driver told to fail burn-in"


def test_a_run_left_open_by_a_dead_conductor_is_closed_failed_by_the_next(
    client: TestClient, context: AppContext,
) -> None:
    assert client.post("/v1/nodes", json=fake_node("d1", "52:54:00:cc:00:01")).status_code == 201
    with context.db.session() as session:
        node = load_node(session, "d1")
        dead = acceptance.start_run(session, node, acceptance.plan_for(None)).id
        node.maintenance = True
        fresh = acceptance.start_run(session, node, acceptance.plan_for(None))
        assert fresh.reason == "revalidation" and fresh.finished_at is None
    shown = client.get(f"/v1/acceptance-runs/{dead}").json()
    assert shown["passed"] is False and shown["finished_at"] is not None
    assert shown["results"][-1]["detail"] == acceptance.ABANDONED
