"""The health API: reports, signals, tickets, the Alertmanager intake, errors and roles."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from metalfleet.conductor.worker import Conductor
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.health.test_remediation import node_row, tickets_of
from tests.integration.scheduling.fleet import build


def alert(node: str, status: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"status": status,
            "labels": {"alertname": "GpuXidErrors", "node": node, "severity": severity,
                       **labels},
            "annotations": {"summary": f"XID 79 on {node}"}}


def webhook(client: TestClient, *alerts: dict[str, Any]) -> None:
    r = client.post("/v1/observability/alertmanager/webhook",
                    json={"receiver": "metalfleet", "alerts": list(alerts)})
    assert r.status_code == 200, r.text


def test_alerts_firing_fail_the_node_and_resolved_clear_it(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, [2])
    webhook(client, alert("gpu-r1-01", "firing", "critical", gpu="3"),
            alert("gpu-r1-02", "firing", "warning", device="nvme0n1"))
    one = client.get("/v1/nodes/gpu-r1-01/health").json()
    assert one["health"] == "failed" and one["maintenance"]
    assert one["maintenance_reason"] == "health: GpuXidErrors on GPU3"
    [signal] = one["signals"]
    assert (signal["source"], signal["component"], signal["severity"]) == (
        "alert", "GPU3", "critical")
    assert signal["evidence"]["labels"]["gpu"] == "3"
    assert one["ticket"]["component"] == "GPU3" and one["ticket"]["status"] == "open"
    two = client.get("/v1/nodes/gpu-r1-02/health").json()
    assert (two["health"], two["maintenance"], two["ticket"]) == ("degraded", False, None)
    events = client.get("/v1/nodes/gpu-r1-01/events").json()["items"]
    assert any(e["kind"] == "alert" for e in events), "the alert event is still recorded"
    metrics = client.get("/metrics").text
    assert "metalfleet_repair_tickets_open 1.0" in metrics
    assert ('metalfleet_health_signals_active{check="GpuXidErrors",severity="critical",'
            'source="alert"} 1.0') in metrics

    webhook(client, alert("gpu-r1-01", "resolved", "critical", gpu="3"),
            alert("gpu-r1-02", "resolved", "warning", device="nvme0n1"))
    assert client.get("/v1/nodes/gpu-r1-02/health").json()["health"] == "ok"
    one = client.get("/v1/nodes/gpu-r1-01/health").json()
    assert one["health"] == "ok" and one["signals"] == []
    assert one["maintenance"], "held until re-validated"
    cleared = client.get("/v1/health/signals", params={"status": "cleared"}).json()["items"]
    assert {s["node"] for s in cleared} == {"gpu-r1-01", "gpu-r1-02"}


def test_agent_reports_through_the_api_and_checks_run_clear(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, [1])
    body = {"source": "agent", "checks_run": ["pcie-width", "disk-smart"], "findings": [
        {"check": "disk-smart", "component": "nvme0n1", "severity": "warning",
         "message": "media wearout 92%", "evidence": {"percentage_used": 92}}]}
    r = client.post("/v1/nodes/gpu-r1-01/health-reports", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["health"] == "degraded" and r.json()["signals"][0]["strikes"] == 1
    r = client.post("/v1/nodes/gpu-r1-01/health-reports", json=body)
    assert r.json()["signals"][0]["strikes"] == 2
    r = client.post("/v1/nodes/gpu-r1-01/health-reports",
                    json={"source": "agent", "findings": [], "checks_run": ["disk-smart"]})
    assert r.json()["health"] == "ok" and r.json()["signals"] == []
    page = client.get("/v1/health/signals", params={"node": "gpu-r1-01", "limit": 1}).json()
    assert len(page["items"]) == 1 and page["next"] is None


def test_operator_opens_and_resolves_a_ticket(
    client: TestClient, context: AppContext, conductor: Conductor,
) -> None:
    build(client, context, [1])
    r = client.post("/v1/repair-tickets", json={"node": "gpu-r1-01", "component": "PSU1",
                                                "summary": "PSU1 smells burnt"})
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert r.headers["location"] == f"/v1/repair-tickets/{ticket['id']}"
    assert ticket["status"] == "open" and ticket["component"] == "PSU1"
    node = node_row(context, "gpu-r1-01")
    assert node.maintenance and node.health == "failed"
    again = client.post("/v1/repair-tickets", json={"node": "gpu-r1-01", "summary": "x"})
    assert again.status_code == 409 and ticket["id"] in again.json()["detail"]
    listed = client.get("/v1/repair-tickets", params={"status": "open"}).json()["items"]
    assert [t["id"] for t in listed] == [ticket["id"]]
    assert client.get(f"/v1/repair-tickets/{ticket['id']}").json()["summary"] == (
        "operator-repair on PSU1: PSU1 smells burnt")

    r = client.post(f"/v1/repair-tickets/{ticket['id']}/resolve", json={"note": "PSU swapped"})
    assert r.status_code == 200, r.text
    assert node_row(context, "gpu-r1-01").state == "burning-in", "re-validation started"
    drive(conductor, lambda: tickets_of(context, "gpu-r1-01")[0].status == "resolved")
    node = node_row(context, "gpu-r1-01")
    assert (node.state, node.maintenance, node.health) == ("available", False, "ok")
    again = client.post(f"/v1/repair-tickets/{ticket['id']}/resolve", json={"note": "x"})
    assert again.status_code == 409


def test_errors_are_problems_that_say_what_to_do(client: TestClient, context: AppContext
                                                 ) -> None:
    build(client, context, [1])
    r = client.get("/v1/nodes/ghost/health")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert "GET /v1/nodes" in r.json()["detail"]
    r = client.post("/v1/nodes/gpu-r1-01/health-reports", json={"findings": [
        {"check": "gpu-xid", "severity": "bad"}]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = client.post("/v1/nodes/gpu-r1-01/health-reports", json={"source": "gossip"})
    assert r.status_code == 422
    assert client.get("/v1/repair-tickets/nope").status_code == 404
    assert client.get("/v1/repair-tickets", params={"status": "maybe"}).status_code == 422
    assert client.post("/v1/repair-tickets", json={"node": "ghost", "summary": "x"}
                       ).status_code == 404
    assert client.post("/v1/repair-tickets", json={"node": "gpu-r1-01"}).status_code == 422


def test_viewers_read_operators_write_members_see_only_their_own(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, [1])
    viewer = client.post("/v1/tokens", json={"name": "ro", "role": "viewer"}).json()["token"]
    member = client.post("/v1/tokens", json={"name": "m", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    assert client.get("/v1/nodes/gpu-r1-01/health", headers=as_viewer).status_code == 200
    assert client.get("/v1/repair-tickets", headers=as_viewer).status_code == 200
    r = client.post("/v1/nodes/gpu-r1-01/health-reports", headers=as_viewer, json={})
    assert r.status_code == 403
    r = client.post("/v1/repair-tickets", headers=as_viewer,
                    json={"node": "gpu-r1-01", "summary": "x"})
    assert r.status_code == 403
    as_member = {"Authorization": f"Bearer {member}"}  # acme holds no node here
    r = client.get("/v1/health/signals", headers=as_member)
    assert r.status_code == 200 and r.json()["items"] == []
    assert client.get("/v1/repair-tickets", headers=as_member).json()["items"] == []
    assert client.get("/v1/nodes/gpu-r1-01/health", headers=as_member).status_code == 404
    r = client.post("/v1/repair-tickets", headers=as_member,
                    json={"node": "gpu-r1-01", "summary": "x"})
    assert r.status_code == 403
