"""Moving a node's switch ports to the network its lifecycle wants (conductor side).

The deploy flow calls :func:`move_node_ports` with ``tenant`` after the image is written and
before the node boots into it; every ramdisk boot (inspect, burn-in, deploy, clean) and the
release flow call it with ``provisioning`` first. Switches are talked to outside any database
transaction (a switch may take seconds). Every move is an event. A move that fails raises
DriverError, so the step fails with the reason: a node whose ports did not reach the tenant
network is never handed to the tenant, and one whose ports did not come back from it is
never cleaned. A failed move to a tenant network puts the ports it had already moved back
on provisioning (best effort, recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from metalfleet.core.errors import DriverError
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.inventory import events
from metalfleet.network import segments
from metalfleet.network.switch import Segment, SwitchDriver, SwitchError
from metalfleet.network.switch_access import driver_for
from metalfleet.secrets import CredentialCipher


@dataclass
class PortPlan:
    port_id: str
    port: str  # the node's name for it (eth0)
    switch: str
    switch_port: str
    driver: SwitchDriver

    @property
    def where(self) -> str:
        return f"{self.port} ({self.switch}/{self.switch_port})"


@dataclass
class MovePlan:
    node_name: str
    role: str
    network_id: str
    segment: Segment
    ports: list[PortPlan]


def plan_moves(db: Database, cipher: CredentialCipher, node_id: str,
               role: str) -> MovePlan | None:
    """The node's managed ports and where ``role`` puts them (read in one transaction);
    None for a node with no port on a managed switch (it stays as cabled)."""
    with db.session() as session:
        node = session.get(m.Node, node_id)
        if node is None:
            raise DriverError("the node is gone")
        if not segments.switched_ports(node):
            return None
        if role == segments.TENANT and node.tenant_id is None:
            role = segments.PROVISIONING  # no tenant: nobody to isolate it for
        placement = segments.placement_for(session, node, role)
        ports = [PortPlan(p.id, p.name, p.switch.name, str(p.switch_port),
                          driver_for(p.switch, cipher))
                 for p in segments.switched_ports(node) if p.switch is not None]
        return MovePlan(node.name, role, placement.network.id, placement.segment, ports)


def _apply(plan: MovePlan, segment: Segment, ports: list[PortPlan]) -> list[PortPlan]:
    """Move each port; the ones moved before a failure are on ``SwitchError.moved``."""
    moved: list[PortPlan] = []
    for port in ports:
        try:
            port.driver.move_port(port.switch_port, segment)
        except SwitchError as exc:
            exc.extra["moved"] = moved
            exc.extra["failed"] = port
            raise
        moved.append(port)
    return moved


def _record(db: Database, node_id: str, actor: str, plan: MovePlan, network_id: str | None,
            moved: list[PortPlan], kind: str, message: str) -> None:
    with db.session() as session:
        node = session.get(m.Node, node_id)
        for port in moved:
            row = session.get(m.Port, port.port_id)
            if row is not None:
                row.switch_network_id = network_id
        events.record(session, node=node, kind=kind, actor=actor, message=message,
                      data={"network": plan.segment.name, "vlan": plan.segment.vlan,
                            "ports": [p.where for p in moved]})


def move_node_ports(db: Database, cipher: CredentialCipher, node_id: str, role: str, *,
                    actor: str) -> MovePlan | None:
    plan = plan_moves(db, cipher, node_id, role)
    if plan is None:
        return None
    target = f"{plan.segment.name} (VLAN {plan.segment.vlan})"
    try:
        moved = _apply(plan, plan.segment, plan.ports)
    except SwitchError as exc:
        moved, failed = exc.extra.get("moved", []), exc.extra.get("failed")
        _record(db, node_id, actor, plan, plan.network_id, moved, "error",
                f"moving {failed.where if failed else 'a port'} to {target} failed: "
                f"{exc.detail}")
        if plan.role == segments.TENANT and moved:
            _roll_back(db, cipher, node_id, actor, moved)
        raise DriverError(f"could not move the node's ports to {target}: {exc.detail}") from exc
    finally:
        close(plan.ports)
    _record(db, node_id, actor, plan, plan.network_id, moved, "network",
            f"ports {', '.join(p.where for p in moved)} on {target}")
    return plan


def _roll_back(db: Database, cipher: CredentialCipher, node_id: str, actor: str,
               moved: list[PortPlan]) -> None:
    back = plan_moves(db, cipher, node_id, segments.PROVISIONING)
    if back is None:
        return
    ids = {p.port_id for p in moved}
    ports = [p for p in back.ports if p.port_id in ids]
    try:
        done = _apply(back, back.segment, ports)
        _record(db, node_id, actor, back, back.network_id, done, "network",
                f"rolled back to {back.segment.name}: {', '.join(p.where for p in done)}")
    except SwitchError as exc:
        _record(db, node_id, actor, back, back.network_id, exc.extra.get("moved", []),
                "error", f"rolling back to {back.segment.name} failed: {exc.detail}")
    finally:
        close(back.ports)


def close(ports: list[PortPlan]) -> None:
    for port in ports:
        port.driver.close()


def mover(db: Database, cipher: CredentialCipher, node_id: str,
          actor: str) -> Callable[[str], None]:
    """The ``NodeContext.move_ports`` callback the conductor hands to a flow."""

    def move(role: str) -> None:
        move_node_ports(db, cipher, node_id, role, actor=actor)

    return move
