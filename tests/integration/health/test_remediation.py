"""The health engine's core loop on a deployed cluster: a GPU fault drains the node, holds it in
maintenance with a ticket, deploys a spare in its place; once the fault clears the node is
re-validated and returned, with no manual step."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.conductor.worker import Conductor
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.health.findings import Finding
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.health.rig import IMAGE, XID, deployed_cluster, report, states


def tickets_of(context: AppContext, name: str) -> list[hm.RepairTicket]:
    with context.db.session() as session:
        return list(session.scalars(select(hm.RepairTicket)
                                    .where(hm.RepairTicket.node_name == name)))


def node_row(context: AppContext, name: str) -> m.Node:
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == name))
        assert node is not None
        return node


def members_of(context: AppContext, cluster: str) -> list[str]:
    with context.db.session() as session:
        return sorted(session.scalars(
            select(m.ClusterNode.node_name).join(m.Cluster)
            .where(m.Cluster.name == cluster)))


def test_gpu_fault_drains_replaces_and_the_node_comes_back_after_revalidation(
    client: TestClient, context: AppContext, conductor: Conductor, tmp_path: Path,
) -> None:
    names, members, log = deployed_cluster(client, context, conductor, tmp_path, racks=[4])
    failed, kept = members
    degraded = next(n for n in names if n not in members)  # free, but not a fit spare
    report(context, degraded, [Finding("disk-smart", "nvme0n1", "warning", "wearout 91%")])
    report(context, failed, [XID])

    # Drained with a reason that names the check, in maintenance, one ticket with evidence.
    assert f"NodeName={failed} State=DRAIN Reason=health: gpu-xid on GPU3" in log.read_text()
    node = node_row(context, failed)
    assert node.health == "failed" and node.maintenance
    assert node.maintenance_reason == "health: gpu-xid on GPU3"
    [ticket] = tickets_of(context, failed)
    assert ticket.status == "open" and ticket.component == "GPU3"
    assert ticket.cluster_name == "train"
    signal = next(e for e in ticket.evidence if e["kind"] == "signal")
    assert signal["evidence"]["xid"] == 79 and signal["first_seen"]
    # A spare from the same leaf joined the cluster and deploys the same image.
    spare = ticket.replacement_node
    assert spare is not None and spare not in members and spare != degraded
    assert members_of(context, "train") == sorted([kept, spare])
    with context.db.session() as session:
        membership = session.scalar(select(m.ClusterNode).where(m.ClusterNode.node_name == spare))
        assert membership is not None and membership.leaf == "ib-leaf-1"
    spare_row = node_row(context, spare)
    assert spare_row.tenant_id is not None and spare_row.labels["metalfleet.io/cluster"] == "train"
    assert node.tenant_id is None and "metalfleet.io/cluster" not in node.labels
    # Each step an event, in order: drain, maintenance, ticket, replacement.
    kinds = [e["kind"] for e in client.get(f"/v1/nodes/{failed}/events").json()["items"]]
    steps = [k for k in kinds if k in ("scheduler", "maintenance", "ticket", "allocation")]
    assert steps[-4:] == ["scheduler", "maintenance", "ticket", "allocation"]

    drive(conductor, lambda: states(context, [spare, failed]) == {
        spare: "active", failed: "available"})
    assert client.get(f"/v1/nodes/{spare}").json()["image"] == IMAGE
    assert node_row(context, failed).maintenance, "cleaned, still held for repair"

    # A further finding adds evidence to the same ticket.
    report(context, failed, [Finding("gpu-ecc", "GPU3", "critical", "uncorrectable ECC")])
    [ticket] = tickets_of(context, failed)
    assert {e["check"] for e in ticket.evidence if e["kind"] == "signal"} == {
        "gpu-xid", "gpu-ecc"}

    # The fault clears: the checks ran and found nothing; the tick re-validates the node.
    report(context, failed, [], checks_run=["gpu-xid", "gpu-ecc"])
    assert node_row(context, failed).health == "ok"
    conductor.health.interval_s = 0.05
    drive(conductor, lambda: tickets_of(context, failed)[0].status == "resolved")
    node = node_row(context, failed)
    assert (node.state, node.maintenance, node.health) == ("available", False, "ok")
    [ticket] = tickets_of(context, failed)
    assert ticket.resolution is not None and ticket.resolution.startswith("re-validated")
    transitions = [(e["from_state"], e["to_state"]) for e in
                   client.get(f"/v1/nodes/{failed}/events").json()["items"]
                   if e["kind"] == "transition"]
    assert transitions[-2:] == [("available", "burning-in"), ("burning-in", "available")]
    health = client.get(f"/v1/nodes/{failed}/health").json()
    assert health["health"] == "ok" and health["signals"] == [] and health["ticket"] is None
