"""Ansible dynamic inventory (the ``--list`` JSON) from the fleet.

Groups: ``cluster_<name>``, ``class_<name>``, ``rack_<name>``, ``tenant_<name>`` and
``role_gpu``/``role_cpu`` (from the node's GPUs), with ``-`` and ``.`` turned into ``_`` since
Ansible group names are identifiers. Host vars: ``ansible_host`` (the node's address on a
management or provisioning network, when IPAM has one) and ``metalfleet_*`` facts from the
inventory.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalfleet.db import models as m

_INVALID = re.compile(r"[^A-Za-z0-9_]")
ADDRESS_ROLES = ("management", "provisioning", "data")

if TYPE_CHECKING:
    from metalfleet.policy import Scope


def group_name(kind: str, name: str) -> str:
    return f"{kind}_{_INVALID.sub('_', name)}"


def _addresses(session: Session, node_ids: list[str]) -> dict[str, str]:
    rows = session.execute(
        select(m.IpAllocation.node_id, m.IpAllocation.address, m.Network.role)
        .join(m.Network, m.Network.id == m.IpAllocation.network_id)
        .where(m.IpAllocation.node_id.in_(node_ids))
    )
    best: dict[str, tuple[int, str]] = {}
    for node_id, address, role in rows:
        if node_id is not None and role in ADDRESS_ROLES:
            rank = ADDRESS_ROLES.index(role)
            if node_id not in best or rank < best[node_id][0]:
                best[node_id] = (rank, address)
    return {node_id: address for node_id, (_, address) in best.items()}


def hostvars(node: m.Node, cluster: str | None, address: str | None) -> dict[str, Any]:
    inventory: dict[str, Any] = node.inventory or {}
    cpu = inventory.get("cpu") or {}
    gpus = inventory.get("gpus") or []
    driver = inventory.get("gpu_driver") or {}
    values: dict[str, Any] = {
        "metalfleet_state": node.state,
        "metalfleet_health": node.health,
        "metalfleet_class": node.node_class.name if node.node_class else None,
        "metalfleet_rack": node.rack.name if node.rack else None,
        "metalfleet_tenant": node.tenant.name if node.tenant else None,
        "metalfleet_cluster": cluster,
        "metalfleet_cpu_model": cpu.get("model"),
        "metalfleet_cpu_sockets": cpu.get("sockets"),
        "metalfleet_cpu_cores": cpu.get("cores"),
        "metalfleet_cpu_threads": cpu.get("threads"),
        "metalfleet_memory_mib": (inventory.get("memory") or {}).get("total_mib"),
        "metalfleet_gpu_count": len(gpus),
        "metalfleet_gpu_model": gpus[0].get("name") if gpus else None,
        "metalfleet_gpu_driver_version": driver.get("driver_version"),
        "metalfleet_cuda_version": driver.get("cuda_version"),
        "metalfleet_ib_ports": len(inventory.get("infiniband") or []),
        "metalfleet_labels": node.labels or {},
    }
    if address:
        values["ansible_host"] = address
    return values


def build(session: Session, *, scope: Scope | None = None) -> dict[str, Any]:
    """The inventory of every node not retired that ``scope`` (the caller's access policy,
    metalfleet/policy.py) lets through: a member's has its tenant's nodes only."""
    statement: Select[Any] = (select(m.Node).where(m.Node.retired.is_(False))
                              .order_by(m.Node.name))
    if scope is not None:
        statement = scope(statement)
    nodes = list(session.scalars(statement).unique())
    clusters: dict[str, str] = {
        node_id: name for node_id, name in session.execute(
            select(m.ClusterNode.node_id, m.Cluster.name)
            .join(m.Cluster, m.Cluster.id == m.ClusterNode.cluster_id))
    }
    addresses = _addresses(session, [n.id for n in nodes]) if nodes else {}
    groups: dict[str, list[str]] = defaultdict(list)
    meta: dict[str, dict[str, Any]] = {}
    for node in nodes:
        cluster = clusters.get(node.id)
        meta[node.name] = hostvars(node, cluster, addresses.get(node.id))
        memberships = [
            ("cluster", cluster),
            ("class", node.node_class.name if node.node_class else None),
            ("rack", node.rack.name if node.rack else None),
            ("tenant", node.tenant.name if node.tenant else None),
            ("role", "gpu" if (node.inventory or {}).get("gpus") else "cpu"),
        ]
        for kind, name in memberships:
            if name:
                groups[group_name(kind, name)].append(node.name)
        if not any(name for kind, name in memberships if kind != "role"):
            groups["ungrouped"].append(node.name)
    result: dict[str, Any] = {"_meta": {"hostvars": meta},
                              "all": {"children": sorted(groups)}}
    for name, hosts in sorted(groups.items()):
        result[name] = {"hosts": hosts}
    return result
