"""/metrics, Prometheus HTTP SD and the Alertmanager webhook, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.runtime import AppContext
from tests.conftest import fake_node


def _fleet(client: TestClient, context: AppContext) -> None:
    """h100 x3 (two active for acme, one available), cpu x1 enrolled; one cluster."""
    assert client.post("/v1/sites", json={"name": "dc1"}).status_code == 201
    assert client.post("/v1/racks", json={"name": "r1", "site": "dc1"}).status_code == 201
    for name in ("h100", "cpu"):
        assert client.post("/v1/node-classes", json={"name": name}).status_code == 201
    assert client.post("/v1/tenants", json={"name": "acme"}).status_code == 201
    bodies = [
        fake_node("g1", "52:54:00:00:00:01", rack="r1", node_class="h100", tenant="acme",
                  labels={"metalfleet.io/address": "10.0.0.11"}),
        fake_node("g2", "52:54:00:00:00:02", rack="r1", node_class="h100", tenant="acme"),
        fake_node("g3", "52:54:00:00:00:03", node_class="h100"),
        fake_node("c1", "52:54:00:00:00:04", node_class="cpu"),
    ]
    for body in bodies:
        assert client.post("/v1/nodes", json=body).status_code == 201, body
    with context.db.session() as session:
        nodes = {n.name: n for n in session.scalars(select(m.Node))}
        nodes["g1"].state = nodes["g2"].state = "active"
        nodes["g2"].health = "degraded"
        nodes["g3"].state = "available"
        nodes["g3"].maintenance = True
        nodes["g3"].bmc_error = "Redfish request timed out after 5 s"
        nodes["c1"].bmc_error = "401 Unauthorized: bad credentials"
        h100 = session.scalar(select(m.NodeClass).where(m.NodeClass.name == "h100"))
        assert h100 is not None
        cluster = m.Cluster(name="train", scheduler="none", node_class_id=h100.id, count=1)
        session.add(cluster)
        session.flush()
        session.add(m.ClusterNode(cluster_id=cluster.id, node_id=nodes["g1"].id,
                                  node_name="g1"))
        session.add(m.Conductor(name="alive-1"))
        session.add(m.Conductor(name="dead-1", heartbeat_at=utcnow() - timedelta(hours=1)))
        session.commit()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_metrics_parse_and_match_the_fleet(client: TestClient, context: AppContext) -> None:
    _fleet(client, context)
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert all("tenant" not in s for s, _ in samples["metalfleet_nodes"])  # off by default
    nodes = {(s["state"], s["health"], s["class"]): v for s, v in samples["metalfleet_nodes"]}
    assert nodes == {
        ("active", "ok", "h100"): 1.0,
        ("active", "degraded", "h100"): 1.0,
        ("available", "ok", "h100"): 1.0,
        ("enrolled", "ok", "cpu"): 1.0,
    }
    bmc = {s["kind"]: v for s, v in samples["metalfleet_nodes_bmc_errors"]}
    assert bmc == {"timeout": 1.0, "auth": 1.0, "unreachable": 0.0, "other": 0.0}
    assert samples["metalfleet_nodes_maintenance"] == [({}, 1.0)]
    assert samples["metalfleet_conductors_alive"] == [({}, 1.0)]
    # Computed at scrape time: a change shows on the next scrape.
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "c1"))
        assert node is not None
        node.bmc_error = None
        session.commit()
    bmc = {s["kind"]: v for s, v in _samples(client.get("/metrics").text)[
        "metalfleet_nodes_bmc_errors"]}
    assert bmc["auth"] == 0.0


def test_empty_fleet_metrics(client: TestClient) -> None:
    samples = _samples(client.get("/metrics").text)
    assert "metalfleet_nodes" not in samples
    assert sum(v for _, v in samples["metalfleet_nodes_bmc_errors"]) == 0.0


def test_sd_lists_active_nodes_exporters_with_labels(client: TestClient,
                                                     context: AppContext) -> None:
    _fleet(client, context)
    response = client.get("/v1/observability/prometheus/sd")
    assert response.status_code == 200, response.text
    groups: list[dict[str, Any]] = response.json()
    assert groups == [
        {"targets": ["10.0.0.11:9100"],
         "labels": {"node": "g1", "rack": "r1", "class": "h100", "tenant": "acme",
                    "cluster": "train", "role": "node-exporter"}},
        {"targets": ["10.0.0.11:9400"],
         "labels": {"node": "g1", "rack": "r1", "class": "h100", "tenant": "acme",
                    "cluster": "train", "role": "gpu-exporter"}},
        {"targets": ["g2:9100"],
         "labels": {"node": "g2", "rack": "r1", "class": "h100", "tenant": "acme",
                    "cluster": "", "role": "node-exporter"}},
        {"targets": ["g2:9400"],
         "labels": {"node": "g2", "rack": "r1", "class": "h100", "tenant": "acme",
                    "cluster": "", "role": "gpu-exporter"}},
    ]
    for group in groups:  # Prometheus rejects label values that are not strings
        assert all(isinstance(v, str) for v in group["labels"].values())


def test_sd_needs_a_reader_token(client: TestClient) -> None:
    r = client.get("/v1/observability/prometheus/sd", headers={"Authorization": ""})
    assert r.status_code == 401
    created = client.post("/v1/tokens", json={"name": "prom", "role": "viewer"})
    assert created.status_code == 201, created.text
    r = client.get("/v1/observability/prometheus/sd",
                   headers={"Authorization": f"Bearer {created.json()['token']}"})
    assert r.status_code == 200 and r.json() == []


def _alert(node: str | None, status: str = "firing", name: str = "GpuXidErrors") -> dict[str, Any]:
    labels = {"alertname": name, "severity": "critical"}
    if node is not None:
        labels["node"] = node
    return {"status": status, "labels": labels,
            "annotations": {"summary": f"XID errors on {node}"},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": "abc123"}


def test_alertmanager_webhook_records_node_events(client: TestClient,
                                                  context: AppContext) -> None:
    _fleet(client, context)
    payload = {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "metalfleet", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager",
        "alerts": [_alert("g1"), _alert("g2", "resolved"), _alert("ghost"), _alert(None)],
    }
    r = client.post("/v1/observability/alertmanager/webhook", json=payload)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 4, "recorded": 2, "unknown_nodes": 1, "unlabelled": 1,
                        "unknown_node_names": ["ghost"]}
    g1 = [e for e in client.get("/v1/nodes/g1/events").json()["items"] if e["kind"] == "alert"]
    assert len(g1) == 1
    assert g1[0]["actor"] == "alertmanager"
    assert g1[0]["message"] == "alert GpuXidErrors firing (critical): XID errors on g1"
    assert g1[0]["data"]["status"] == "firing" and g1[0]["data"]["severity"] == "critical"
    g2 = client.get("/v1/events", params={"node": "g2", "kind": "alert"}).json()["items"]
    assert [e["data"]["status"] for e in g2] == ["resolved"]


def test_webhook_needs_an_operator(client: TestClient) -> None:
    created = client.post("/v1/tokens", json={"name": "ro", "role": "viewer"}).json()["token"]
    r = client.post("/v1/observability/alertmanager/webhook", json={"alerts": []},
                    headers={"Authorization": f"Bearer {created}"})
    assert r.status_code == 403
