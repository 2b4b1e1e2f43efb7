"""Lab faults over the API, found by the lab's health loop (real agent checks) and the engine.

The lab is built as `metalfleet up --lab` builds it (emulated Redfish BMCs, synthetic roots).
To stay fast, the nodes are not walked through the lifecycle: the test records their
inspected inventory and state as inspection and `provide` would (the slow e2e test
tests/e2e/test_lab_faults.py does the real walk).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory
from metalfleet.db import models as m
from metalfleet.inventory import schemas as s
from metalfleet.inventory import tokens
from metalfleet.lab.handle import LabHandle, close_lab, open_lab
from metalfleet.lab.runner import build_lab, start_lab_bmcs
from metalfleet.runtime import AppContext

GPU = "lab-gpu-01"
NO_LAB = "no such endpoint"  # a process without --lab has no lab routes at all


@pytest.fixture
def lab(context: AppContext, lab_enabled: object) -> Iterator[LabHandle]:
    emulator, server = start_lab_bmcs(context)
    build_lab(context, 4, emulator, server)
    with context.db.session() as session:
        for node in session.scalars(select(m.Node)):
            root = HardwareRoot(node.driver_info["hardware_root"])
            node.inventory = collect_inventory(root)  # what inspection records
        session.execute(update(m.Node).values(state="available"))
    handle = open_lab(context, emulator, start_health=False)  # tests sweep by hand
    assert handle.health is not None
    handle.health.budget_s = 60.0  # every node each sweep, however slow the CI machine
    yield handle
    close_lab(context, handle)
    server.stop()


def _health(client: TestClient, name: str) -> dict[str, Any]:
    response = client.get(f"/v1/nodes/{name}/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_without_a_lab_every_route_is_a_404_problem(client: TestClient) -> None:
    for method, path, body in (("GET", "/v1/lab/faults", None),
                               ("POST", "/v1/lab/faults", {"node": GPU, "kind": "fan"}),
                               ("DELETE", f"/v1/lab/faults/{GPU}", None)):
        response = client.request(method, path, json=body)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"].startswith(NO_LAB)


def test_gpu_xid_round_trip_through_the_health_engine(client: TestClient,
                                                      lab: LabHandle) -> None:
    assert lab.health is not None
    lab.health.sweep()
    assert _health(client, GPU)["health"] == "ok"

    response = client.post("/v1/lab/faults", json={"node": GPU, "kind": "gpu-xid",
                                                   "component": "3"})
    assert response.status_code == 201, response.text
    assert response.json()["component"] == "GPU3"
    listed = client.get("/v1/lab/faults").json()["items"]
    assert [(f["node"], f["kind"], f["component"]) for f in listed] == [
        (GPU, "gpu-xid", "GPU3")]

    result = lab.health.sweep()
    assert result.checked == 4 and result.failed == 0
    health = _health(client, GPU)
    [signal] = [sig for sig in health["signals"] if sig["status"] == "active"]
    assert (signal["source"], signal["check"], signal["component"]) == (
        "agent", "gpu-xid", "GPU3")
    assert signal["evidence"]["xids"] == [79]
    assert health["health"] == "failed"
    assert _health(client, "lab-gpu-02")["health"] == "ok", "the other nodes stay healthy"

    cleared = client.delete(f"/v1/lab/faults/{GPU}")
    assert cleared.status_code == 200
    assert [f["kind"] for f in cleared.json()["items"]] == ["gpu-xid"]
    assert client.get("/v1/lab/faults").json()["items"] == []
    lab.health.sweep()
    signals = client.get("/v1/health/signals", params={"node": GPU}).json()["items"]
    assert [(sig["check"], sig["status"]) for sig in signals] == [("gpu-xid", "cleared")]
    kinds = [e["kind"] for e in client.get(f"/v1/nodes/{GPU}/events").json()["items"]]
    assert kinds.count("lab-fault") == 2


def test_a_clean_node_is_not_reported_every_sweep(client: TestClient, lab: LabHandle) -> None:
    assert lab.health is not None
    first = lab.health.sweep()
    assert first.reported == 4, "every node once, to clear stale signals"
    assert lab.health.sweep().reported == 0
    client.post("/v1/lab/faults", json={"node": "lab-gpu-02", "kind": "ib-link-down"})
    assert lab.health.sweep().reported == 1
    assert lab.health.latest["lab-gpu-02"].findings[0]["component"] == "mlx5_0"


def test_fan_fault_reaches_the_bmc(client: TestClient, lab: LabHandle) -> None:
    response = client.post("/v1/lab/faults", json={"node": "lab-cpu-01", "kind": "fan",
                                                   "component": "FAN4"})
    assert response.status_code == 201
    node = client.get("/v1/nodes/lab-cpu-01").json()
    system = lab.emulator.get(node["bmc"]["address"].rsplit("/", 1)[1])
    assert system is not None
    fan4 = next(sensor for sensor in system.sensors if sensor["name"] == "FAN4")
    assert fan4["health"] == "Critical" and fan4["reading"] == 0
    assert "FAN4" in system.log[-1]["Message"]


def test_invalid_requests_are_problems_that_say_how_to_fix_them(
        context: AppContext, client: TestClient, lab: LabHandle) -> None:
    unknown = client.post("/v1/lab/faults", json={"node": "nope", "kind": "fan"})
    assert unknown.status_code == 404 and "GET /v1/nodes" in unknown.json()["detail"]
    cpu_gpu = client.post("/v1/lab/faults", json={"node": "lab-cpu-01", "kind": "gpu-ecc"})
    assert cpu_gpu.status_code == 422 and "lab-gpu-NN" in cpu_gpu.json()["detail"]
    kind = client.post("/v1/lab/faults", json={"node": GPU, "kind": "meteor"})
    assert kind.status_code == 422 and "gpu-xid" in kind.json()["detail"]
    with context.db.session() as session:
        _, secret = tokens.create_token(session, s.TokenIn(name="eyes", role=s.Role.VIEWER))
    viewer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/lab/faults", headers=viewer).status_code == 403  # operator-only
    denied = client.post("/v1/lab/faults", json={"node": GPU, "kind": "fan"}, headers=viewer)
    assert denied.status_code == 403
    assert client.delete(f"/v1/lab/faults/{GPU}", headers=viewer).status_code == 403


def test_sweeps_stay_in_budget_and_go_round_robin(client: TestClient, lab: LabHandle) -> None:
    assert lab.health is not None
    lab.health.sweep()  # every node once (budget 60 s)
    lab.health.budget_s = 0.0  # one node a sweep, plus the hot ones
    seen = [lab.health.sweep().nodes[0] for _ in range(4)]
    assert sorted(seen) == ["lab-cpu-01", "lab-gpu-01", "lab-gpu-02", "lab-gpu-03"]
    client.post("/v1/lab/faults", json={"node": "lab-gpu-03", "kind": "disk-smart"})
    names = lab.health.sweep().nodes
    assert names[0] == "lab-gpu-03" and len(names) == 2, "the poked node first, then one more"
    assert lab.health.latest["lab-gpu-03"].findings[0]["check"] == "disk-smart"
    assert "lab-gpu-03" in lab.health.sweep().nodes, "a node with findings stays hot"
