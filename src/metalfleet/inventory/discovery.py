"""Discovery: a machine whose MACs nobody enrolled boots the discovery ramdisk, its agent
reports in, and it becomes a node.

The new node is ``enrolled`` with the hardware type and BMC driver ``none`` (no BMC is
known: verify fails asking for one, and setting the BMC with PATCH switches the hardware
type to the BMC's driver), one port per reported NIC (the NIC it network-booted from marked
``pxe``), the agent's inventory, the label ``metalfleet.io/discovered=true`` and a
``discovered`` event. The same MACs always land on the same node, so a machine that boots
the discovery image twice is not enrolled twice.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError, ValidationError
from metalfleet.core.states import NodeState
from metalfleet.db import models as m
from metalfleet.inventory import events

DISCOVERED_LABEL = "metalfleet.io/discovered"
NO_BMC = "none"
# A flood of fake lookups must not fill the fleet: past this many discovered nodes still
# without a BMC, discovery refuses until an operator deals with them.
MAX_PENDING = 1000
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_SERIAL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
# What firmware writes when the vendor left the serial empty.
_PLACEHOLDER_SERIALS = frozenset({
    "0", "00000000", "123456789", "none", "not specified", "default string",
    "system serial number", "to be filled by o.e.m.", "chassis serial number",
})  # fmt: skip


def normal_macs(macs: list[str]) -> list[str]:
    normal = [mac.strip().lower().replace("-", ":") for mac in macs]
    bad = [mac for mac in normal if not _MAC_RE.match(mac)]
    if bad:
        raise ValidationError(f"{', '.join(bad)} is not a MAC address like 52:54:00:12:34:56")
    return normal


def node_name(inventory: dict[str, Any], macs: list[str]) -> str:
    """The DMI serial when it is a usable name, else ``node-`` and the first MAC's digits."""
    serial = str((inventory.get("dmi") or {}).get("product_serial") or "").strip().lower()
    if serial not in _PLACEHOLDER_SERIALS and _SERIAL_RE.match(serial):
        return f"node-{serial}"
    return "node-" + sorted(macs)[0].replace(":", "")


def _ports(inventory: dict[str, Any], macs: list[str], boot_mac: str | None) -> list[m.Port]:
    names = {str(nic.get("mac", "")).lower(): str(nic.get("name") or "")
             for nic in inventory.get("nics", []) if nic.get("mac")}
    ports, used = [], set()
    for index, mac in enumerate(sorted(set(macs))):
        name = names.get(mac, "")[:32] or f"nic{index}"
        if name in used:
            name = f"nic{index}"
        used.add(name)
        ports.append(m.Port(name=name, mac=mac, pxe=mac == boot_mac))
    if boot_mac is None and ports:
        ports[0].pxe = True  # the agent could not tell: the first port is the best guess
    return ports


def find_by_macs(session: Session, macs: list[str]) -> m.Node | None:
    return session.scalar(select(m.Node).join(m.Port).where(m.Port.mac.in_(macs)).limit(1))


def discover(session: Session, macs: list[str], *, inventory: dict[str, Any],
             boot_mac: str | None, address: str | None) -> tuple[m.Node, bool]:
    """The node these MACs belong to, created if there is none; True when it was created."""
    normal = normal_macs(macs)
    if not normal:
        raise ValidationError("send at least one MAC address to be discovered")
    boot = normal_macs([boot_mac])[0] if boot_mac else None
    existing = find_by_macs(session, normal)
    if existing is not None:
        return existing, False
    pending = session.scalar(select(func.count()).select_from(m.Node)
                             .where(m.Node.bmc_driver == NO_BMC))
    if (pending or 0) >= MAX_PENDING:
        raise ConflictError(
            f"{pending} discovered nodes still have no BMC; set their BMCs or delete them "
            "before more machines can be discovered"
        )
    name = node_name(inventory, normal)
    if session.scalar(select(m.Node.id).where(m.Node.name == name)) is not None:
        name = f"{name[:50]}-{normal[0].replace(':', '')[-6:]}"
    node = m.Node(
        name=name, hardware_type=NO_BMC, bmc_driver=NO_BMC, bmc_address="",
        bmc_verify_tls=True, state=NodeState.ENROLLED.value, inventory=inventory,
        labels={DISCOVERED_LABEL: "true"}, driver_info={}, u_size=1,
    )
    try:
        with session.begin_nested():  # two agents of one machine may race; one node wins
            session.add(node)
            session.flush()
            node.ports.extend(_ports(inventory, normal, boot))
            session.flush()
    except IntegrityError:
        raced = find_by_macs(session, normal)
        if raced is None:
            raise ConflictError(f"a node named {name!r} was created at the same time; "
                                "boot the machine again") from None
        return raced, False
    events.record(session, node=node, kind="discovered", actor="agent",
                  message=f"discovered from {address or 'an unknown address'} with MACs "
                          f"{', '.join(normal)}; set its BMC address and credentials to "
                          "manage it", to_state=NodeState.ENROLLED.value,
                  data={"macs": normal, "boot_mac": boot})
    session.flush()
    return node, True
