"""The other ways through the health engine: no spare, two strikes, a failed re-validation
repaired by an operator, and a node deleted under its ticket."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from metalfleet.conductor.worker import Conductor
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.health import engine, rules
from metalfleet.health.findings import Finding
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.health.rig import XID, deployed_cluster, report, states
from tests.integration.health.test_remediation import members_of, node_row, tickets_of
from tests.integration.scheduling.fleet import build

IB_DOWN = Finding("ib-link-down", "mlx5_0", "critical", "port 1 state DOWN")


def test_no_spare_keeps_the_node_drained_in_the_cluster_then_returns_it(
    client: TestClient, context: AppContext, conductor: Conductor, tmp_path: Path,
) -> None:
    _, members, log = deployed_cluster(client, context, conductor, tmp_path, racks=[2])
    failed = members[0]
    report(context, failed, [XID])
    [ticket] = tickets_of(context, failed)
    assert ticket.replacement_node is None and "no spare" in ticket.summary
    entry = next(e for e in ticket.evidence if e["kind"] == "replacement")
    assert entry["spare"] is None and "0 free of the class" in entry["detail"]
    assert members_of(context, "train") == sorted(members)
    node = node_row(context, failed)
    assert node.state == "active" and node.maintenance and node.health == "failed"
    assert "State=DRAIN" in log.read_text()

    # The fault clears: without a spare nothing replaced it, so it is returned as it is.
    report(context, failed, [], checks_run=["gpu-xid"])
    conductor.health.interval_s = 0.05
    drive(conductor, lambda: tickets_of(context, failed)[0].status == "resolved")
    node = node_row(context, failed)
    assert (node.state, node.maintenance, node.health) == ("active", False, "ok")
    assert f"NodeName={failed} State=RESUME" in log.read_text()
    assert "without an acceptance run" in (tickets_of(context, failed)[0].resolution or "")


def test_two_strikes_degrade_then_fail_and_a_lone_strike_expires(
    client: TestClient, context: AppContext, monkeypatch: pytest.MonkeyPatch,
) -> None:
    build(client, context, [2])
    monkeypatch.setattr(rules, "_current", rules.RuleBook.from_dict(None, 60))
    report(context, "gpu-r1-01", [IB_DOWN, IB_DOWN])  # one report is one sighting
    node = node_row(context, "gpu-r1-01")
    assert (node.health, node.maintenance) == ("degraded", False)
    assert tickets_of(context, "gpu-r1-01") == []
    report(context, "gpu-r1-01", [IB_DOWN])
    node = node_row(context, "gpu-r1-01")
    assert (node.health, node.maintenance) == ("failed", True)
    assert node.maintenance_reason == "health: ib-link-down on mlx5_0"
    assert len(tickets_of(context, "gpu-r1-01")) == 1

    # On another node the first strike is not followed by a second within the window.
    monkeypatch.setattr(rules, "_current", rules.RuleBook.from_dict(None, 0.2))
    report(context, "gpu-r1-02", [IB_DOWN])
    time.sleep(0.4)
    report(context, "gpu-r1-02", [IB_DOWN])  # too late: a first strike again
    assert node_row(context, "gpu-r1-02").health == "degraded"
    time.sleep(0.4)
    engine.tick(context.db)
    assert node_row(context, "gpu-r1-02").health == "ok"
    body = client.get("/v1/health/signals", params={"node": "gpu-r1-02"}).json()
    assert [s["status"] for s in body["items"]] == ["cleared"]


def test_failed_revalidation_waits_for_repair_then_the_operator_resolves(
    client: TestClient, context: AppContext, conductor: Conductor, tmp_path: Path,
) -> None:
    _, members, _ = deployed_cluster(client, context, conductor, tmp_path, racks=[3])
    failed = members[0]
    report(context, failed, [XID])
    drive(conductor, lambda: states(context, [failed])[failed] == "available")
    with context.db.session() as session:  # the hardware still fails its acceptance test
        session.execute(update(m.Node).where(m.Node.name == failed)
                        .values(driver_info={"fail": "burn-in"}))
    report(context, failed, [], checks_run=["gpu-xid"])
    conductor.health.interval_s = 0.05
    drive(conductor, lambda: any(e["kind"] == "revalidation"
                                 for e in tickets_of(context, failed)[0].evidence))
    node = node_row(context, failed)
    assert (node.state, node.maintenance) == ("burnin-failed", True)
    [ticket] = tickets_of(context, failed)
    assert ticket.status == "open"
    assert next(e for e in ticket.evidence if e["kind"] == "revalidation")["passed"] is False
    # It stays so (no retry loop) until someone repairs it.
    end = time.monotonic() + 0.5
    drive(conductor, lambda: time.monotonic() > end)
    assert node_row(context, failed).state == "burnin-failed"

    with context.db.session() as session:
        session.execute(update(m.Node).where(m.Node.name == failed).values(driver_info={}))
    r = client.post(f"/v1/repair-tickets/{ticket.id}/resolve", json={"note": "GPU3 swapped"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open"  # resolved once the re-validation passes
    assert any(e["kind"] == "repair" and e["note"] == "GPU3 swapped" for e in r.json()["evidence"])
    drive(conductor, lambda: tickets_of(context, failed)[0].status == "resolved")
    node = node_row(context, failed)
    assert (node.state, node.maintenance, node.health) == ("available", False, "ok")


def finish_validate(context: AppContext, name: str, passed: bool) -> str:
    """What the conductor's burn-in flow leaves behind: the node's outcome and its run."""
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == name))
        assert node is not None and node.state == "burning-in"
        node.state = "available" if passed else "burnin-failed"
        run = hm.AcceptanceRun(node_id=node.id, node_name=node.name, reason="revalidation",
                               results=[{"step": "gpu-memory-bandwidth",
                                         "status": "pass" if passed else "fail"}],
                               passed=passed, finished_at=utcnow())
        session.add(run)
        session.flush()
        return run.id


def test_the_acceptance_run_decides_and_a_new_fault_needs_a_new_run(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, [1])
    name = "gpu-r1-01"
    report(context, name, [XID])
    report(context, name, [], checks_run=["gpu-xid"])
    engine.tick(context.db)  # requests validate
    first = finish_validate(context, name, passed=True)
    # A new fault shows and clears before the tick sees the run: that run predates it.
    time.sleep(0.01)
    report(context, name, [Finding("gpu-ecc", "GPU1", "critical", "DBE")])
    report(context, name, [], checks_run=["gpu-ecc"])
    engine.tick(context.db)
    [ticket] = tickets_of(context, name)
    assert ticket.status == "open" and node_row(context, name).state == "burning-in"
    second = finish_validate(context, name, passed=True)
    engine.tick(context.db)
    [ticket] = tickets_of(context, name)
    assert ticket.status == "resolved" and second in (ticket.resolution or "")
    assert first not in (ticket.resolution or "")
    assert not node_row(context, name).maintenance


def test_conductors_ticking_at_once_act_once(client: TestClient, context: AppContext) -> None:
    build(client, context, [1])
    name = "gpu-r1-01"
    report(context, name, [XID])
    report(context, name, [], checks_run=["gpu-xid"])
    barrier = threading.Barrier(4)

    def tick(i: int) -> None:
        barrier.wait()
        engine.tick(context.db, actor=f"conductor-{i}")

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    [ticket] = tickets_of(context, name)
    assert [e["kind"] for e in ticket.evidence].count("validate-requested") == 1
    validates = [e for e in client.get(f"/v1/nodes/{name}/events").json()["items"]
                 if e["kind"] == "transition" and e["to_state"] == "burning-in"]
    assert len(validates) == 1
