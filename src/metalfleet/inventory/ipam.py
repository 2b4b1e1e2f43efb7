"""IP address management: allocate and release addresses in a network, never twice."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError, ExhaustedError, NotFoundError, ValidationError
from metalfleet.db import models as m
from metalfleet.inventory.resources import KINDS, get, resolve_ref

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _reserved(network: m.Network) -> set[IpAddress]:
    """Addresses IPAM never hands out: the gateway and the DHCP pool."""
    reserved: set[IpAddress] = set()
    if network.gateway:
        reserved.add(ipaddress.ip_address(network.gateway))
    return reserved


def _in_dhcp_range(network: m.Network, address: IpAddress) -> bool:
    if not (network.dhcp_start and network.dhcp_end):
        return False
    start, end = ipaddress.ip_address(network.dhcp_start), ipaddress.ip_address(network.dhcp_end)
    return int(start) <= int(address) <= int(end)


def _candidates(network: m.Network) -> Iterator[IpAddress]:
    reserved = _reserved(network)
    for address in ipaddress.ip_network(network.cidr).hosts():
        if address not in reserved and not _in_dhcp_range(network, address):
            yield address


def allocate(
    session: Session, network_name: str, *, address: str | None = None,
    node_name: str | None = None, purpose: str = "",
) -> m.IpAllocation:
    network: m.Network = get(session, KINDS["networks"], network_name)
    node = resolve_ref(session, m.Node, node_name, "node") if node_name else None
    taken = set(session.scalars(
        select(m.IpAllocation.address).where(m.IpAllocation.network_id == network.id)
    ))
    if address is not None:
        try:
            wanted = ipaddress.ip_address(address)
        except ValueError as exc:
            raise ValidationError(f"{address!r} is not an IP address") from exc
        if wanted not in ipaddress.ip_network(network.cidr):
            raise ValidationError(
                f"{address} is outside network {network.name} ({network.cidr}); "
                "pick an address inside it"
            )
        if wanted in _reserved(network) or _in_dhcp_range(network, wanted):
            raise ConflictError(
                f"{address} is the gateway or inside the DHCP range of {network.name}; "
                "pick a static address outside them"
            )
        if str(wanted) in taken:
            raise ConflictError(f"{address} is already allocated in {network.name}")
        chosen = str(wanted)
    else:
        chosen = next((str(a) for a in _candidates(network) if str(a) not in taken), "")
        if not chosen:
            raise ExhaustedError(
                f"network {network.name} ({network.cidr}) has no free static address left "
                "outside its gateway and DHCP range; release addresses or shrink the DHCP range",
                network=network.name,
            )
    allocation = m.IpAllocation(network=network, address=chosen, node=node, purpose=purpose)
    session.add(allocation)
    try:
        session.flush()
    except IntegrityError as exc:
        # Another process took the same address between our read and our insert.
        raise ConflictError(
            f"{chosen} was allocated concurrently in {network.name}; retry the request"
        ) from exc
    return allocation


def release(session: Session, network_name: str, address: str) -> None:
    network: m.Network = get(session, KINDS["networks"], network_name)
    allocation = session.scalar(
        select(m.IpAllocation).where(
            m.IpAllocation.network_id == network.id, m.IpAllocation.address == address
        )
    )
    if allocation is None:
        raise NotFoundError(f"{address} is not allocated in {network.name}")
    session.delete(allocation)
    session.flush()


def list_allocations(session: Session, network_name: str) -> list[m.IpAllocation]:
    network: m.Network = get(session, KINDS["networks"], network_name)
    return list(session.scalars(
        select(m.IpAllocation).where(m.IpAllocation.network_id == network.id)
        .order_by(m.IpAllocation.created_at)
    ))
