"""Node reservation in the database: one conductor per node, dead conductors recovered."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from metalfleet.conductor import reservation
from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node


def _node_id(context: AppContext, name: str) -> str:
    with context.db.session() as session:
        return session.scalars(select(m.Node.id).where(m.Node.name == name)).one()


def test_only_one_conductor_wins_a_node(client: TestClient, context: AppContext) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    node_id = _node_id(context, "n1")
    with context.db.session() as session:
        assert reservation.reserve(session, node_id, "c1") is True
    with context.db.session() as session:
        assert reservation.reserve(session, node_id, "c2") is False
    with context.db.session() as session:
        reservation.release(session, node_id, "c2")  # not the holder: no effect
        assert session.get(m.Node, node_id).reservation == "c1"  # type: ignore[union-attr]
        reservation.release(session, node_id, "c1")
    with context.db.session() as session:
        assert session.get(m.Node, node_id).reservation is None  # type: ignore[union-attr]


def test_api_refuses_actions_on_a_reserved_node(client: TestClient, context: AppContext) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    with context.db.session() as session:
        reservation.reserve(session, _node_id(context, "n1"), "busy-conductor")
    r = client.post("/v1/nodes/n1/actions/manage")
    assert r.status_code == 409 and "busy-conductor" in r.json()["detail"]
    assert client.get("/v1/nodes/n1").json()["state"] == "enrolled"


def test_dead_conductor_work_fails_with_reason_and_retry_succeeds(
    client: TestClient, context: AppContext, conductor: Conductor
) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    client.post("/v1/nodes/n1/actions/manage")
    node_id = _node_id(context, "n1")
    # A conductor took the node, then died: its heartbeat is a minute old.
    with context.db.session() as session:
        session.add(m.Conductor(name="dead-one", heartbeat_at=utcnow() - timedelta(minutes=1)))
        reservation.reserve(session, node_id, "dead-one")
    with context.db.session() as session:
        recovered = reservation.recover_dead(session, me="test-conductor", dead_after_s=30)
    assert recovered == ["n1"]
    node = client.get("/v1/nodes/n1").json()
    assert node["state"] == "verify-failed" and node["reservation"] is None
    assert "dead-one stopped responding during verifying" in node["last_error"]
    assert client.post("/v1/nodes/n1/actions/manage").status_code == 202
    drive(conductor, lambda: client.get("/v1/nodes/n1").json()["state"] == "manageable")


def test_live_conductor_keeps_its_nodes(client: TestClient, context: AppContext) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    node_id = _node_id(context, "n1")
    with context.db.session() as session:
        reservation.heartbeat(session, "alive-one")
        reservation.reserve(session, node_id, "alive-one")
    with context.db.session() as session:
        assert reservation.recover_dead(session, me="other", dead_after_s=30) == []
        assert session.get(m.Node, node_id).reservation == "alive-one"  # type: ignore[union-attr]


def test_two_conductors_share_work_without_overlap(
    client: TestClient, context: AppContext
) -> None:
    names = [f"n{i}" for i in range(12)]
    for i, name in enumerate(names):
        client.post("/v1/nodes", json=fake_node(name, f"52:54:00:00:01:{i:02x}",
                                                driver_info={"delay_s": 0.05}))
        client.post(f"/v1/nodes/{name}/actions/manage")
    first = Conductor(context.db, context.cipher, name="c-a", workers=3, poll_interval_s=0.02)
    second = Conductor(context.db, context.cipher, name="c-b", workers=3, poll_interval_s=0.02)

    def all_manageable() -> bool:
        with context.db.session() as session:
            states = set(session.scalars(select(m.Node.state)))
        return states == {"manageable"}

    import asyncio
    import time

    async def both() -> None:
        deadline = time.monotonic() + 30
        while not (await asyncio.to_thread(all_manageable)):
            await asyncio.gather(first.tick(), second.tick())
            await asyncio.sleep(0.02)
            assert time.monotonic() < deadline, "conductors did not finish"
        await asyncio.gather(first.drain(), second.drain())

    asyncio.run(both())
    with context.db.session() as session:
        started = session.scalars(
            select(m.Event.actor).where(m.Event.message.like("verifying started%"))
        ).all()
    assert len(started) == len(names), "each node is worked on exactly once"
    assert set(started) == {"c-a", "c-b"}, "both conductors took work"
    with context.db.session() as session:
        session.execute(update(m.Node).values(reservation=None))
