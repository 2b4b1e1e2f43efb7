"""Replacing a failed cluster member with a spare from the free pool, keeping the topology.

A spare is what cluster allocation would pick (allocation.candidates: available, idle, same
class, in no cluster, free or the cluster's tenant's, matching the cluster's labels), with
health ok. Among them we prefer, in order:

- ``same_leaf``: only the cluster's leaf switch (hard, as when it was placed);
- ``spread_racks``: a rack no remaining member uses, then the failed node's rack;
- otherwise: the failed node's leaf, then any leaf the cluster already uses (fewest leaves).

Within the preferred pool placement.place picks one (best fit keeps big leaves whole).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError
from metalfleet.db import models as m
from metalfleet.inventory import events, tenancy
from metalfleet.scheduling import allocation
from metalfleet.scheduling.placement import Candidate, place


@dataclass(frozen=True)
class Swap:
    spare: m.Node | None
    detail: str  # what happened, or why no spare was found
    leaf: str | None = None
    rack: str | None = None


def preferred_pools(found: list[Candidate], failed: m.ClusterNode,
                    others: list[m.ClusterNode], constraints: dict[str, object]
                    ) -> list[list[Candidate]]:
    """Candidate pools, best first (pure: unit-tested without a database)."""
    pools: list[list[Candidate]] = []
    pool = found
    if constraints.get("same_leaf"):
        leaf = failed.leaf or next((o.leaf for o in others if o.leaf), None)
        pool = [c for c in found if c.leaf == leaf]
        if not pool:
            return []
    keep: list[Callable[[Candidate], bool]]
    if constraints.get("spread_racks"):
        used = {o.rack for o in others}
        keep = [lambda c: c.rack not in used, lambda c: c.rack == failed.rack]
    else:
        leaves = {o.leaf for o in others if o.leaf}
        keep = [lambda c: c.leaf is not None and c.leaf == failed.leaf,
                lambda c: c.leaf in leaves]
    for wanted in keep:
        pools.append([c for c in pool if wanted(c)])
    pools.append(pool)
    return [p for p in pools if p]


def find_and_swap(session: Session, node: m.Node, membership: m.ClusterNode, *,
                  actor: str) -> Swap:
    """Move the cluster's membership from ``node`` to a spare, in the caller's transaction."""
    cluster = membership.cluster
    tenant = cluster.tenant
    labels = dict((cluster.constraints or {}).get("labels") or {})
    found, ids = allocation.candidates(session, cluster.node_class, tenant, labels)
    # Allocation takes degraded nodes too; a replacement must be fully healthy.
    healthy = set(session.scalars(select(m.Node.name).where(
        m.Node.id.in_(list(ids.values())), m.Node.health == "ok")))
    found = [c for c in found if c.name in healthy]
    others = [mb for mb in cluster.members if mb.node_id != node.id]
    for pool in preferred_pools(found, membership, others, cluster.constraints or {}):
        pick = place(pool, 1).nodes[0]
        spare = session.scalar(select(m.Node).where(m.Node.id == ids[pick.name]))
        if spare is None:
            continue
        try:
            allocation._take(session, [spare], tenant)  # the same guarded UPDATE as placement
        except ConflictError:
            continue  # taken meanwhile; the next pool may still have one
        _swap(session, cluster, membership, node, spare, pick, actor)
        return Swap(spare, f"{spare.name} replaces {node.name} in cluster {cluster.name}",
                    pick.leaf, pick.rack)
    where = f" with labels {labels}" if labels else ""
    why = " on the cluster's leaf switch" if (cluster.constraints or {}).get("same_leaf") else ""
    return Swap(None, f"no spare for {node.name} in cluster {cluster.name}: no free, healthy "
                f"{cluster.node_class.name} node{where}{why} "
                f"({len(found)} free of the class); the node stays in the cluster, drained")


def _swap(session: Session, cluster: m.Cluster, membership: m.ClusterNode, node: m.Node,
          spare: m.Node, pick: Candidate, actor: str) -> None:
    cluster.members.remove(membership)  # delete-orphan removes the row
    session.flush()
    cluster.members.append(m.ClusterNode(node=spare, node_id=spare.id, node_name=spare.name,
                                         leaf=pick.leaf, rack=pick.rack))
    spare.labels = {**(spare.labels or {}), allocation.CLUSTER_LABEL: cluster.name}
    labels = dict(node.labels or {})
    if labels.get(allocation.CLUSTER_LABEL) == cluster.name:
        del labels[allocation.CLUSTER_LABEL]
    node.labels = labels
    if node.tenant_id == cluster.tenant_id:
        tenancy.hand_to(node, None)
    events.record(session, node=node, kind="allocation", actor=actor,
                  message=f"released from cluster {cluster.name}: replaced by {spare.name}",
                  data={"cluster": cluster.name, "replacement": spare.name})
    events.record(session, node=spare, kind="allocation", actor=actor,
                  message=f"allocated to cluster {cluster.name} in place of {node.name}",
                  data={"cluster": cluster.name, "replaces": node.name, "leaf": pick.leaf,
                        "rack": pick.rack})
    session.flush()
