"""MetalLB for a Kubernetes cluster: an IPAddressPool of addresses IPAM set aside for it, and an
L2Advertisement announcing them from the cluster's nodes.

The addresses are allocated when the cluster is configured with a service network (purpose
``metallb:<cluster>``, no node), so rendering only reads; deleting the cluster releases them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.inventory import ipam
from metalfleet.scheduling.kubernetes.labels import PREFIX

NAMESPACE = "metallb-system"
API_VERSION = "metallb.io/v1beta1"


def purpose(cluster: str) -> str:
    return f"metallb:{cluster}"


def allocations(session: Session, cluster: str) -> list[m.IpAllocation]:
    return list(session.scalars(select(m.IpAllocation)
                                .where(m.IpAllocation.purpose == purpose(cluster))))


def reserve(session: Session, cluster: str, network: str | None, count: int) -> None:
    """Hold ``count`` addresses of ``network`` for the cluster (none when network is None)."""
    held = allocations(session, cluster)
    keep = [a for a in held if network is not None and a.network.name == network][:count]
    for allocation in held:
        if allocation not in keep:
            session.delete(allocation)
    session.flush()
    if network is None:
        return
    for _ in range(count - len(keep)):
        ipam.allocate(session, network, purpose=purpose(cluster))


def address_ranges(addresses: list[str]) -> list[str]:
    """Consecutive addresses as MetalLB ranges: ``10.0.0.5-10.0.0.9``; single ones as /32."""
    ips = sorted({ipaddress.ip_address(a) for a in addresses}, key=lambda ip: (ip.version, ip))
    spans: list[list[Any]] = []
    for ip in ips:
        if spans and spans[-1][1].version == ip.version and int(ip) == int(spans[-1][1]) + 1:
            spans[-1][1] = ip
        else:
            spans.append([ip, ip])
    return [f"{a}/{a.max_prefixlen}" if a == b else f"{a}-{b}" for a, b in spans]


def manifests(session: Session, cluster: m.Cluster) -> list[dict[str, Any]]:
    held = allocations(session, cluster.name)
    if not held:
        return []
    pool = f"{cluster.name}-{held[0].network.name}"
    return [
        {"apiVersion": API_VERSION, "kind": "IPAddressPool",
         "metadata": {"name": pool, "namespace": NAMESPACE},
         "spec": {"addresses": address_ranges([a.address for a in held]),
                  "autoAssign": True}},
        {"apiVersion": API_VERSION, "kind": "L2Advertisement",
         "metadata": {"name": cluster.name, "namespace": NAMESPACE},
         "spec": {"ipAddressPools": [pool],
                  "nodeSelectors": [{"matchLabels": {f"{PREFIX}/cluster": cluster.name}}]}},
    ]
