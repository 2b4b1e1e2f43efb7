"""Which network a node's ports belong on, and the networks themselves.

The lifecycle decides (:func:`desired_role`): a node metalfleet works on sits on the
provisioning network, an active node on its tenant's network, a failed node on quarantine.
This module finds those networks, creating what is missing: a tenant's network is allocated
on first use, a VLAN from ``TENANT_VLANS`` and a /24 of ``TENANT_SUPERNET`` picked by that
VLAN (layer 2 is the isolation; the addresses are the tenant's to use); the quarantine
network (``QUARANTINE_VLAN``) carries nothing and reaches nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError, ExhaustedError
from metalfleet.core.states import Health, NodeState
from metalfleet.db import models as m
from metalfleet.network.switch import Segment

PROVISIONING, TENANT, QUARANTINE = "provisioning", "tenant", "quarantine"
TENANT_VLANS = range(1000, 4000)
TENANT_SUPERNET = ipaddress.ip_network("10.128.0.0/12")  # 4096 /24s: one per possible VLAN
QUARANTINE_VLAN = 4094
QUARANTINE_NAME = "quarantine"


def desired_role(node: m.Node) -> str:
    """Quarantine beats everything: a failed node must reach nothing, tenant or not."""
    if node.health == Health.FAILED.value:
        return QUARANTINE
    if node.state == NodeState.ACTIVE.value and node.tenant_id is not None:
        return TENANT
    return PROVISIONING


@dataclass(frozen=True)
class Placement:
    network: m.Network
    segment: Segment


def _placement(network: m.Network) -> Placement:
    if network.vlan_id is None:
        raise ConflictError(f"network {network.name} has no VLAN, so no switch can put a port "
                            f"on it; set one: PATCH /v1/networks/{network.name}")
    return Placement(network, Segment(network.name, network.vlan_id))


def provisioning(session: Session, node: m.Node) -> Placement:
    """The provisioning network of the node's site (or the only one), with its VLAN."""
    candidates = list(session.scalars(select(m.Network).where(
        m.Network.role == PROVISIONING).order_by(m.Network.name)))
    site_id = node.rack.site_id if node.rack is not None else None
    same_site = [n for n in candidates if n.site_id == site_id]
    chosen = next(iter(same_site or candidates), None)
    if chosen is None:
        raise ConflictError("no provisioning network is defined: create one with a VLAN "
                            "(POST /v1/networks, role provisioning) before switches move ports")
    return _placement(chosen)


def quarantine(session: Session) -> Placement:
    network = session.scalar(select(m.Network).where(m.Network.role == QUARANTINE))
    if network is None:
        network = _insert(session, m.Network(
            name=QUARANTINE_NAME, role=QUARANTINE, vlan_id=QUARANTINE_VLAN,
            cidr="192.0.2.0/24"))  # TEST-NET-1: nothing is addressed or routed there
        if network is None:  # another conductor made it first
            return quarantine(session)
    return _placement(network)


def tenant_network(session: Session, tenant: m.Tenant) -> Placement:
    """The tenant's network, allocated on first use (the lowest free VLAN of the range)."""
    for _ in range(8):  # a concurrent allocation can take the VLAN we picked: pick again
        found = session.scalar(select(m.Network).where(
            m.Network.role == TENANT, m.Network.tenant_id == tenant.id).order_by(
            m.Network.name))
        if found is not None:
            return _placement(found)
        used = set(session.scalars(select(m.Network.vlan_id).where(
            m.Network.vlan_id.is_not(None))))
        vlan = next((v for v in TENANT_VLANS if v not in used), None)
        if vlan is None:
            raise ExhaustedError(f"every tenant VLAN ({TENANT_VLANS.start}-"
                                 f"{TENANT_VLANS.stop - 1}) is taken")
        subnet = ipaddress.ip_network((int(TENANT_SUPERNET.network_address) + vlan * 256, 24))
        created = _insert(session, m.Network(
            name=f"tenant-{tenant.name}"[:63], role=TENANT, vlan_id=vlan, cidr=str(subnet),
            gateway=str(subnet.network_address + 1), tenant_id=tenant.id))
        if created is not None:
            return _placement(created)
    raise ConflictError(f"could not allocate a network for tenant {tenant.name}: the VLANs "
                        "kept being taken concurrently; retry")


def _insert(session: Session, network: m.Network) -> m.Network | None:
    """Add ``network`` in a savepoint; None when a unique name or tenant VLAN clashes."""
    try:
        with session.begin_nested():
            session.add(network)
            session.flush()
    except IntegrityError:
        return None
    return network


def placement_for(session: Session, node: m.Node, role: str) -> Placement:
    if role == QUARANTINE:
        return quarantine(session)
    if role == TENANT:
        if node.tenant is None:
            raise ConflictError(f"node {node.name} has no tenant, so it has no tenant network")
        return tenant_network(session, node.tenant)
    return provisioning(session, node)


def switched_ports(node: m.Node) -> list[m.Port]:
    """The node's ports on a switch metalfleet manages (the rest stay as cabled)."""
    return [p for p in node.ports if p.switch is not None and p.switch_port
            and p.switch.driver != "none"]
