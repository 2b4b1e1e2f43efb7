"""Attacks on tenancy: read another tenant's nodes, or the previous tenant's history of a node.

A node moves from tenant to tenant. What happened under the previous tenant (its events,
acceptance runs, health findings, repair tickets) is that tenant's business: the next one
must not read it through the API or through the dashboard, and the previous one must read
nothing of a node it no longer holds. Both doors apply the one policy (metalfleet/policy.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.inventory import events
from metalfleet.runtime import AppContext
from tests.integration.scheduling.fleet import GPU_CLASS, build

ORIGIN = {"Origin": "http://testserver"}
WEB = Path(__file__).resolve().parents[2] / "src" / "metalfleet" / "web"


def _member(client: TestClient, tenant: str) -> dict[str, str]:
    r = client.post("/v1/tokens", json={"name": f"{tenant}-m", "role": "member",
                                        "tenant": tenant})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _cluster(client: TestClient, name: str, tenant: str) -> str:
    r = client.post("/v1/clusters", json={"name": name, "scheduler": "none",
                                          "node_class": GPU_CLASS, "count": 1,
                                          "tenant": tenant})
    assert r.status_code == 201, r.text
    node: str = r.json()["nodes"][0]["name"]
    return node


def _history(context: AppContext, node_name: str, tag: str) -> dict[str, str]:
    """One of each record about the node, as its current tenant's work would leave them."""
    with context.db.session() as session:
        node = session.scalars(select(m.Node).where(m.Node.name == node_name)).one()
        events.record(session, node=node, kind="error", actor="conductor",
                      message=f"{tag}-event")
        run = hm.AcceptanceRun(node_id=node.id, node_name=node.name, reason="burn-in",
                               passed=False, results=[], plan={"note": f"{tag}-run"})
        signal = hm.HealthSignal(node_id=node.id, source="operator", check="gpu-xid",
                                 component="GPU0", severity="warning",
                                 message=f"{tag}-signal")
        ticket = hm.RepairTicket(node_id=node.id, node_name=node.name, component="GPU0",
                                 summary=f"{tag}-ticket")
        session.add_all([run, signal, ticket])
        session.flush()
        return {"run": run.id, "signal": signal.id, "ticket": ticket.id}


@pytest.fixture
def handed_over(client: TestClient, context: AppContext) -> Iterator[dict[str, Any]]:
    """The fleet's one node: acme's first (with history), then released and given to beta."""
    build(client, context, racks=[1])
    node = _cluster(client, "acme-c", "acme")
    acme = _history(context, node, "acme")
    assert client.delete("/v1/clusters/acme-c").status_code == 204
    assert _cluster(client, "beta-c", "beta") == node
    beta = _history(context, node, "beta")
    yield {"node": node, "acme": acme, "beta": beta,
           "as_acme": _member(client, "acme"), "as_beta": _member(client, "beta")}


def _text(client: TestClient, path: str, headers: dict[str, str]) -> str:
    r = client.get(path, headers=headers)
    assert r.status_code == 200, (path, r.text)
    return r.text


def test_the_next_tenant_reads_only_its_own_tenancy(client: TestClient,
                                                    handed_over: dict[str, Any]) -> None:
    node, as_beta = handed_over["node"], handed_over["as_beta"]
    acme, beta = handed_over["acme"], handed_over["beta"]
    for path in (f"/v1/nodes/{node}/events", "/v1/events?limit=1000",
                 f"/v1/nodes/{node}/acceptance-runs", "/v1/health/signals",
                 f"/v1/nodes/{node}/health", "/v1/repair-tickets"):
        seen = _text(client, path, as_beta)
        assert "acme" not in seen, path  # no event, run, signal or ticket of acme's tenancy
    assert "beta-event" in _text(client, f"/v1/nodes/{node}/events", as_beta)
    listed = client.get("/v1/events", headers=as_beta).json()["items"]
    assert listed and {e["node"] for e in listed} == {node}  # no fleet-wide events
    assert [r["id"] for r in client.get(f"/v1/nodes/{node}/acceptance-runs",
                                        headers=as_beta).json()["items"]] == [beta["run"]]
    assert [s["id"] for s in client.get("/v1/health/signals",
                                        headers=as_beta).json()["items"]] == [beta["signal"]]
    assert [t["id"] for t in client.get("/v1/repair-tickets",
                                        headers=as_beta).json()["items"]] == [beta["ticket"]]
    # The previous tenant's records by id: answered exactly as ids that do not exist.
    for kind, path in (("run", "/v1/acceptance-runs/{}"), ("ticket", "/v1/repair-tickets/{}")):
        theirs = client.get(path.format(acme[kind]), headers=as_beta)
        ghost = client.get(path.format("00000000-0000-0000-0000-000000000000"),
                           headers=as_beta)
        assert theirs.status_code == ghost.status_code == 404
        assert theirs.json()["detail"].replace(acme[kind], "X") == \
            ghost.json()["detail"].replace("00000000-0000-0000-0000-000000000000", "X")
        assert client.get(path.format(beta[kind]), headers=as_beta).status_code == 200
    # Operators still read the whole history.
    everything = _text(client, f"/v1/nodes/{node}/events", {})
    assert "acme-event" in everything and "beta-event" in everything


def test_the_previous_tenant_reads_nothing_of_the_node(client: TestClient,
                                                       handed_over: dict[str, Any]) -> None:
    node, as_acme, acme = handed_over["node"], handed_over["as_acme"], handed_over["acme"]
    for path in (f"/v1/nodes/{node}", f"/v1/nodes/{node}/events",
                 f"/v1/nodes/{node}/acceptance-runs", f"/v1/nodes/{node}/health",
                 f"/v1/acceptance-runs/{acme['run']}", f"/v1/repair-tickets/{acme['ticket']}",
                 "/v1/clusters/beta-c"):
        assert client.get(path, headers=as_acme).status_code == 404, path
    for path in ("/v1/nodes", "/v1/events", "/v1/health/signals", "/v1/repair-tickets",
                 "/v1/clusters"):
        assert client.get(path, headers=as_acme).json()["items"] == [], path
    assert client.post(f"/v1/nodes/{node}/actions/power-on",
                       headers=as_acme).status_code == 404


@pytest.fixture
def web(client: TestClient) -> Iterator[TestClient]:
    with TestClient(client.app) as browser:
        yield browser


def _login(web: TestClient, headers: dict[str, str]) -> None:
    token = headers["Authorization"].removeprefix("Bearer ")
    r = web.post("/ui/login", data={"token": token, "next": "/"}, headers=ORIGIN,
                 follow_redirects=False)
    assert r.status_code == 303, r.text


def test_the_dashboard_applies_the_same_policy(client: TestClient, web: TestClient,
                                               handed_over: dict[str, Any]) -> None:
    node = handed_over["node"]
    _login(web, handed_over["as_beta"])
    detail, overview = _text(web, f"/ui/nodes/{node}", {}), _text(web, "/", {})
    assert "beta-event" in detail and "beta-signal" in detail and "beta-ticket" in detail
    for page in (detail, overview):
        assert "acme-event" not in page and "acme-signal" not in page
        assert "acme-ticket" not in page
    _login(web, handed_over["as_acme"])
    assert web.get(f"/ui/nodes/{node}").status_code == 404
    pages = [_text(web, path, {}) for path in ("/", "/ui/nodes", "/ui/racks", "/ui/tenants")]
    assert not any(node in page or "acme-event" in page for page in pages)


def test_the_dashboard_calls_no_api_route() -> None:
    """The dashboard asks the policy and the services, never an API route function (whose
    checks would then be the only ones, and whose dependencies it would have to fake)."""
    for path in WEB.glob("*.py"):
        tree = ast.parse(path.read_text())
        for stmt in ast.walk(tree):
            if isinstance(stmt, ast.ImportFrom) and stmt.module:
                assert not stmt.module.startswith("metalfleet.api.routes"), path.name
                assert not (stmt.module == "metalfleet.api"
                            and any(a.name == "routes" for a in stmt.names)), path.name
            if isinstance(stmt, ast.Import):
                assert not any(a.name.startswith("metalfleet.api.routes")
                               for a in stmt.names), path.name


def test_a_tenancy_starts_when_the_tenant_gets_the_node(client: TestClient,
                                                        context: AppContext) -> None:
    """Also through PATCH (the dashboard's "Set tenant"), and keeping the same tenant keeps
    its tenancy."""
    build(client, context, racks=[1])
    node = client.get("/v1/nodes").json()["items"][0]["name"]
    assert client.patch(f"/v1/nodes/{node}", json={"tenant": "acme"}).status_code == 200
    _history(context, node, "acme")
    with context.db.session() as session:
        first = session.scalar(select(m.Node.tenant_since).where(m.Node.name == node))
    assert first is not None
    assert client.patch(f"/v1/nodes/{node}", json={"tenant": "acme"}).status_code == 200
    as_acme = _member(client, "acme")
    assert "acme-event" in _text(client, f"/v1/nodes/{node}/events", as_acme)
    assert client.patch(f"/v1/nodes/{node}", json={"tenant": "beta"}).status_code == 200
    as_beta = _member(client, "beta")
    assert "acme" not in _text(client, f"/v1/nodes/{node}/events", as_beta)
    assert client.patch(f"/v1/nodes/{node}", json={"tenant": None}).status_code == 200
    with context.db.session() as session:
        assert session.scalar(select(m.Node.tenant_since).where(m.Node.name == node)) is None


def test_dashboard_forms_name_no_other_tenant_rack_or_switch(
        client: TestClient, context: AppContext, web: TestClient) -> None:
    """Found by trying it against a running server: a member's enrolment page listed every
    tenant and rack, the node list's filters every rack, and the rack view the switches,
    none of which the API lets a member read."""
    build(client, context, racks=[1, 1])
    for r in (1, 2):
        assert client.patch(f"/v1/switches/eth-leaf-{r}",
                            json={"u_position": 40}).status_code == 200
    node = _cluster(client, "beta-c", "beta")
    mine = client.get(f"/v1/nodes/{node}").json()["rack"]
    other = "rack-2" if mine == "rack-1" else "rack-1"
    _login(web, _member(client, "beta"))
    for path in ("/ui/enroll", "/ui/nodes", "/ui/racks", f"/ui/nodes/{node}", "/",
                 "/ui/tenants"):
        page = _text(web, path, {})
        assert "acme" not in page, path  # another tenant's name
        assert other not in page, path  # a rack holding none of its nodes
        assert f"leaf-{other[-1]}" not in page, path  # the other rack's switches
    # The rack view shows its rack and nodes, no switch (the node's own page still names
    # the switch ports its NICs are cabled to, as the API's node does).
    racks = _text(web, "/ui/racks", {})
    assert mine in racks and "eth-leaf" not in racks and "ib-leaf" not in racks
    assert "beta" in _text(web, "/ui/enroll", {})  # its own tenant is still offered
    # Operators still get every choice.
    _login(web, {"Authorization": client.headers["Authorization"]})
    page = _text(web, "/ui/enroll", {})
    assert "acme" in page and "rack-1" in page and "rack-2" in page
    assert "eth-leaf-1" in _text(web, "/ui/racks", {})
