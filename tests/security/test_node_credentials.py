"""Attacks with a node's monitor credential: the tenant has root on the node, so it has the
credential; it must speak for that node's health reports and nothing else."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from metalfleet.db import models as m
from metalfleet.db.audit_models import AuditEntry
from metalfleet.db.health_models import HealthSignal
from metalfleet.db.node_credential_models import NodeCredential
from metalfleet.runtime import AppContext
from tests.conftest import fake_node

REPORT = {"source": "agent", "checks_run": ["gpu-count"], "findings": [
    {"check": "gpu-count", "component": "gpu", "severity": "critical", "message": "0 of 8"}]}


def _fleet(client: TestClient) -> str:
    for name, mac in (("n1", "52:54:00:00:00:01"), ("n2", "52:54:00:00:00:02")):
        assert client.post("/v1/nodes", json=fake_node(name, mac)).status_code == 201
    issued = client.post("/v1/nodes/n1/monitor-credential")
    assert issued.status_code == 201, issued.text
    secret: str = issued.json()["credential"]
    assert secret.startswith("mfn_")
    return secret


def _as(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _signals(context: AppContext) -> int:
    with context.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(HealthSignal)) or 0)


OWN = {("POST", "/v1/nodes/n1/health-reports"), ("GET", "/v1/nodes/n1/monitor-expectations")}


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every API operation (from the OpenAPI document), with path parameters set to n1."""
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), re.sub(r"\{[^}]+\}", "n1", path))
            for path, operations in paths.items() for method in operations]


def test_own_health_report_is_accepted(client: TestClient, context: AppContext) -> None:
    secret = _fleet(client)
    response = client.post("/v1/nodes/n1/health-reports", json=REPORT, headers=_as(secret))
    assert response.status_code == 200, response.text
    assert response.json()["node"] == "n1" and _signals(context) == 1
    expected = client.get("/v1/nodes/n1/monitor-expectations", headers=_as(secret))
    assert expected.status_code == 200 and set(expected.json()) == {"node", "inventory"}


def test_another_nodes_report_is_refused(client: TestClient, context: AppContext) -> None:
    secret = _fleet(client)
    for node in ("n2", "no-such-node"):  # 403 both: no probing which nodes exist
        response = client.post(f"/v1/nodes/{node}/health-reports", json=REPORT,
                               headers=_as(secret))
        assert response.status_code == 403, response.text
        assert client.get(f"/v1/nodes/{node}/monitor-expectations",
                          headers=_as(secret)).status_code == 403
    posing = client.post("/v1/nodes/n1/health-reports", json={**REPORT, "source": "bmc"},
                         headers=_as(secret))
    assert posing.status_code == 403  # its own node, but not as the BMC or an operator
    assert _signals(context) == 0
    assert client.get("/v1/nodes/n2/health").json()["health"] == "ok"


def test_every_other_route_refuses_it(client: TestClient, context: AppContext) -> None:
    secret = _fleet(client)
    checked = 0
    for method, path in _routes(client):
        if (method, path) in OWN:
            continue
        anonymous = client.request(method, path, headers={"Authorization": ""}, json={})
        if anonymous.status_code != 401:
            continue  # an anonymous endpoint (boot, agent, NoCloud, metrics): no roles there
        response = client.request(method, path, headers=_as(secret), json={})
        assert response.status_code == 403, (method, path, response.text)
        checked += 1
    assert checked > 40  # the walk really saw the API
    with context.db.session() as session:
        assert {"n1", "n2"} <= set(session.scalars(select(m.Node.name)))
    assert _signals(context) == 0
    # issuing or revoking credentials is an operator's, not the node's
    assert client.post("/v1/nodes/n1/monitor-credential", headers=_as(secret)).status_code == 403
    assert client.delete("/v1/nodes/n1/monitor-credential",
                         headers=_as(secret)).status_code == 403
    assert client.post("/v1/nodes/n1/health-reports", json=REPORT,
                       headers=_as(secret)).status_code == 200  # still its own, still valid


def test_no_token_with_the_node_role(client: TestClient) -> None:
    response = client.post("/v1/tokens", json={"name": "sneaky", "role": "node"})
    assert response.status_code == 422
    assert all(t["name"] != "sneaky" for t in client.get("/v1/tokens").json()["items"])


def test_dashboard_login_refuses_it(client: TestClient) -> None:
    secret = _fleet(client)
    client.headers.pop("Authorization")
    response = client.post("/ui/login", data={"token": secret, "next": "/"},
                           headers={"Origin": str(client.base_url)}, follow_redirects=False)
    assert response.status_code == 401 and not response.cookies
    assert client.get("/", follow_redirects=False).status_code == 303  # to the login


def test_revoked_replaced_and_undeployed_credentials_stop(
        client: TestClient, context: AppContext) -> None:
    old = _fleet(client)
    new = client.post("/v1/nodes/n1/monitor-credential").json()["credential"]
    refused = client.post("/v1/nodes/n1/health-reports", json=REPORT, headers=_as(old))
    assert refused.status_code == 401  # replaced: the old one is unknown now
    assert client.delete("/v1/nodes/n1/monitor-credential").status_code == 204
    assert client.post("/v1/nodes/n1/health-reports", json=REPORT,
                       headers=_as(new)).status_code == 401
    assert client.get("/v1/nodes", headers=_as(new)).status_code == 401
    assert _signals(context) == 0
    assert client.delete("/v1/nodes/n1/monitor-credential").status_code == 404

    third = client.post("/v1/nodes/n1/monitor-credential").json()["credential"]
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "n1"))
        assert node is not None
        node.state = "active"
    assert client.post("/v1/nodes/n1/actions/undeploy").status_code == 202
    assert client.post("/v1/nodes/n1/health-reports", json=REPORT,
                       headers=_as(third)).status_code == 401
    with context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(NodeCredential)) == 0


def test_deleting_the_node_removes_it(client: TestClient, context: AppContext) -> None:
    _fleet(client)
    assert client.delete("/v1/nodes/n1").status_code == 204
    with context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(NodeCredential)) == 0


def test_its_report_answer_reads_nothing_else(client: TestClient, context: AppContext) -> None:
    """Found by trying it against a running server: the answer to the node's own report
    carried every active signal and the open repair ticket of the node, including a previous
    tenant's (its cluster's name, the operator's notes). The credential reads nothing."""
    secret = _fleet(client)
    opened = client.post("/v1/repair-tickets", json={"node": "n1", "component": "GPU0",
                                                      "summary": "previous-tenant-secret"})
    assert opened.status_code == 201, opened.text
    response = client.post("/v1/nodes/n1/health-reports", json=REPORT, headers=_as(secret))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["node"] == "n1" and answer["signals"] == [] and answer["ticket"] is None
    assert answer["maintenance_reason"] is None
    assert "previous-tenant-secret" not in response.text and "operator" not in response.text
    # An operator posting the same still reads everything.
    operator = client.post("/v1/nodes/n1/health-reports",
                           json={**REPORT, "source": "operator"}).json()
    assert operator["ticket"] is not None and len(operator["signals"]) >= 2


def test_refused_calls_are_audited_as_the_node(client: TestClient,
                                               context: AppContext) -> None:
    """A refused call names the node whose credential tried it, not "anonymous": that is
    the machine to look at."""
    secret = _fleet(client)
    for method, path, body in (("POST", "/v1/nodes/n2/health-reports", REPORT),
                               ("POST", "/v1/nodes/n1/actions/power-off", {}),
                               ("POST", "/v1/tokens", {"name": "x", "role": "admin"})):
        response = client.request(method, path, json=body, headers=_as(secret))
        assert response.status_code == 403, (path, response.text)
    with context.db.session() as session:
        audited = {(row.path, row.principal, row.status)
                   for row in session.scalars(select(AuditEntry))}
    assert ("/v1/nodes/n2/health-reports", "node:n1", 403) in audited
    assert ("/v1/nodes/n1/actions/power-off", "node:n1", 403) in audited
    assert ("/v1/tokens", "node:n1", 403) in audited
    assert secret not in str(audited)
