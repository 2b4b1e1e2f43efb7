"""Searching the event log by node, kinds, time window and text, oldest or newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from metalfleet.db import models as m
from metalfleet.inventory import events
from metalfleet.runtime import AppContext
from tests.conftest import fake_node


def _seed(client: TestClient, context: AppContext) -> datetime:
    assert client.post("/v1/nodes", json=fake_node("s1", "52:54:00:00:10:01")).status_code == 201
    assert client.post("/v1/nodes", json=fake_node("s2", "52:54:00:00:10:02")).status_code == 201
    old = datetime.now(UTC) - timedelta(hours=2)
    with context.db.session() as session:
        s1 = session.query(m.Node).filter_by(name="s1").one()
        s2 = session.query(m.Node).filter_by(name="s2").one()
        events.record(session, node=s1, kind="alert", actor="alertmanager",
                      message="alert GpuXidError firing (critical): GPU 3 reported XID 79")
        events.record(session, node=s1, kind="bmc-log", actor="conductor",
                      message="SEL: Fan FAN2 lower critical going low")
        events.record(session, node=s2, kind="alert", actor="alertmanager",
                      message="alert NodeDown firing (critical)")
        stale = events.record(session, node=s1, kind="alert", actor="alertmanager",
                              message="alert GpuXidError resolved")
        stale.time = old
    return old


def test_search_by_node_kinds_text_and_window(client: TestClient, context: AppContext) -> None:
    old = _seed(client, context)

    def search(**params: str) -> list[str]:
        r = client.get("/v1/events", params=params)
        assert r.status_code == 200, r.text
        return [e["message"] for e in r.json()["items"]]

    assert search(node="s1", kind="alert", q="xid") == [
        "alert GpuXidError firing (critical): GPU 3 reported XID 79", "alert GpuXidError resolved"]
    both = search(node="s1", kind="alert,bmc-log")
    assert len(both) == 3 and any(msg.startswith("SEL: Fan FAN2") for msg in both)
    recent = (old + timedelta(hours=1)).isoformat()
    assert search(node="s1", kind="alert", since=recent) == [
        "alert GpuXidError firing (critical): GPU 3 reported XID 79"]
    assert search(node="s1", kind="alert", until=recent) == ["alert GpuXidError resolved"]
    assert search(kind="alert", q="nodedown") == ["alert NodeDown firing (critical)"]


def test_newest_first_pages_backwards(client: TestClient, context: AppContext) -> None:
    _seed(client, context)
    first = client.get("/v1/events", params={"node": "s1", "order": "desc", "limit": 2}).json()
    ids = [e["id"] for e in first["items"]]
    assert ids == sorted(ids, reverse=True) and first["next"] == str(ids[-1])
    rest = client.get("/v1/events", params={"node": "s1", "order": "desc", "limit": 100,
                                            "after": first["next"]}).json()["items"]
    assert rest and all(e["id"] < ids[-1] for e in rest)
    assert {e["id"] for e in rest}.isdisjoint(ids)


def test_bad_order_is_a_problem(client: TestClient) -> None:
    r = client.get("/v1/events", params={"order": "sideways"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
