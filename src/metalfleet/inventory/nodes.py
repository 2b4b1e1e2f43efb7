"""Nodes: enrolment, changes, listing and the non-lifecycle actions (maintenance, power)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError, NodeBusyError, ValidationError
from metalfleet.core.states import DELETABLE_STATES, NodeState, allowed_actions
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.inventory import events, tenancy
from metalfleet.inventory import schemas as s
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.lifecycle import load_node
from metalfleet.inventory.pagination import paginate, split_page
from metalfleet.inventory.resources import resolve_ref
from metalfleet.secrets import CredentialCipher

if TYPE_CHECKING:
    from metalfleet.policy import Scope


def _check_macs_free(session: Session, ports: list[s.PortIn], node_id: str | None) -> None:
    macs = [p.mac for p in ports]
    if not macs:
        return
    statement = select(m.Port.mac, m.Node.name).join(m.Node).where(m.Port.mac.in_(macs))
    if node_id is not None:
        statement = statement.where(m.Port.node_id != node_id)
    taken = session.execute(statement).first()
    if taken is not None:
        raise ConflictError(
            f"MAC {taken[0]} is already a port of node {taken[1]!r}; a MAC belongs to one "
            "node only: fix the address or remove the port from the other node",
            mac=taken[0],
        )


def _check_rack_space(session: Session, node: m.Node) -> None:
    if node.rack is None or node.u_position is None:
        return
    top = node.u_position + node.u_size - 1
    if top > node.rack.u_height:
        raise ValidationError(
            f"U{node.u_position}-U{top} does not fit rack {node.rack.name!r} "
            f"({node.rack.u_height}U); pick a lower u_position"
        )
    clash = session.scalar(
        select(m.Node.name).where(
            m.Node.rack_id == node.rack_id,
            m.Node.id != node.id,
            m.Node.u_position.is_not(None),
            m.Node.u_position <= top,
            m.Node.u_position + m.Node.u_size - 1 >= node.u_position,
        )
    )
    if clash is not None:
        raise ConflictError(
            f"U{node.u_position}-U{top} of rack {node.rack.name!r} is taken by node "
            f"{clash!r}; pick a free position"
        )


def _set_ports(session: Session, node: m.Node, ports: list[s.PortIn]) -> None:
    _check_macs_free(session, ports, node.id)
    node.ports.clear()
    session.flush()
    for port in ports:
        node.ports.append(
            m.Port(
                name=port.name,
                mac=port.mac,
                network=resolve_ref(session, m.Network, port.network, "network")
                if port.network else None,
                switch=resolve_ref(session, m.Switch, port.switch, "switch")
                if port.switch else None,
                switch_port=port.switch_port,
                speed_gbps=port.speed_gbps,
                pxe=port.pxe,
            )
        )


def _set_bmc(node: m.Node, bmc: s.BmcIn, cipher: CredentialCipher) -> None:
    """Set the BMC from ``bmc``; without a ``password`` key the stored password stays
    (``"password": null`` removes it), so nobody must resend a secret to change an address."""
    node.bmc_driver = bmc.driver.value
    node.bmc_address = bmc.address
    node.bmc_username = bmc.username
    if "password" in bmc.model_fields_set or node.bmc_password_encrypted is None:
        node.bmc_password_encrypted = (
            cipher.encrypt(bmc.password.get_secret_value()) if bmc.password is not None
            else None
        )
    node.bmc_verify_tls = bmc.verify_tls
    node.bmc_error = None


def _set_refs(session: Session, node: m.Node, values: dict[str, Any]) -> None:
    if "rack" in values:
        node.rack = resolve_ref(session, m.Rack, values["rack"], "rack") if values["rack"] else None
    if "node_class" in values:
        node.node_class = (
            resolve_ref(session, m.NodeClass, values["node_class"], "node_class")
            if values["node_class"] else None
        )
    if "tenant" in values:
        tenancy.hand_to(node, resolve_ref(session, m.Tenant, values["tenant"], "tenant")
                        if values["tenant"] else None)


def enroll(session: Session, data: s.NodeIn, cipher: CredentialCipher, *, actor: str,
           lab: LabGate | None = None) -> m.Node:
    """Enrol a node. ``lab`` says whether the caller may use the lab's shortcuts here; the
    default (none) refuses them, as in every production process."""
    (lab or LabGate.closed()).check_node(
        (data.hardware_type or data.bmc.driver).value, data.driver_info)
    if session.scalar(select(m.Node.id).where(m.Node.name == data.name)) is not None:
        raise ConflictError(
            f"a node named {data.name!r} already exists; pick another name or "
            f"PATCH /v1/nodes/{data.name}"
        )
    node = m.Node(
        name=data.name,
        u_position=data.u_position,
        u_size=data.u_size,
        hardware_type=(data.hardware_type or data.bmc.driver).value,
        driver_info=data.driver_info,
        labels=data.labels,
        state=NodeState.ENROLLED.value,
        inventory={},
    )
    _set_bmc(node, data.bmc, cipher)
    _set_refs(session, node, data.model_dump(include={"rack", "node_class", "tenant"}))
    session.add(node)
    session.flush()
    _set_ports(session, node, data.ports)
    _check_rack_space(session, node)
    events.record(session, node=node, kind="transition", actor=actor,
                  message="enrolled", to_state=NodeState.ENROLLED.value)
    session.flush()
    return node


def update_node(
    session: Session, name: str, patch: s.NodePatch, cipher: CredentialCipher, *, actor: str,
    lab: LabGate | None = None,
) -> m.Node:
    node = load_node(session, name)
    (lab or LabGate.closed()).check_node(None, patch.driver_info,
                                         current_type=node.hardware_type)
    values = patch.model_dump(exclude_unset=True)
    _set_refs(session, node, values)
    for key in ("u_position", "u_size", "driver_info", "labels"):
        if key in values:
            setattr(node, key, values[key])
    if patch.bmc is not None:
        _set_bmc(node, patch.bmc, cipher)
        if node.hardware_type == "none":  # a discovered node gets its first BMC
            node.hardware_type = patch.bmc.driver.value
    if patch.ports is not None:
        _set_ports(session, node, patch.ports)
    node.updated_at = utcnow()
    session.flush()
    _check_rack_space(session, node)
    changed = sorted(k for k in values if k != "bmc") + (["bmc"] if patch.bmc else [])
    events.record(session, node=node, kind="info", actor=actor,
                  message=f"updated: {', '.join(changed) or 'nothing'}")
    return node


def delete_node(session: Session, name: str, *, actor: str) -> None:
    node = load_node(session, name)
    if node.reservation is not None:
        raise NodeBusyError(f"node {name!r} is being worked on by {node.reservation}; retry later")
    if NodeState(node.state) not in DELETABLE_STATES:
        raise ConflictError(
            f"node {name!r} is {node.state}; undeploy it (or wait for its work to end) "
            "before deleting it",
            state=node.state,
        )
    events.record(session, node=None, kind="info", actor=actor, message=f"node {name} deleted")
    session.delete(node)
    session.flush()


def set_maintenance(
    session: Session, name: str, on: bool, reason: str | None, *, actor: str
) -> m.Node:
    node = load_node(session, name)
    if on and not reason:
        raise ValidationError('maintenance on needs a reason: send {"reason": "..."}')
    node.maintenance = on
    node.maintenance_reason = reason if on else None
    node.updated_at = utcnow()
    events.record(
        session, node=node, kind="maintenance", actor=actor,
        message=f"maintenance on: {reason}" if on else "maintenance off",
    )
    session.flush()
    return node


def request_power(session: Session, name: str, target: str, *, actor: str) -> m.Node:
    """Queue a power change (on, off, reboot); a conductor carries it out through the BMC."""
    node = load_node(session, name)
    if node.reservation is not None or node.state in {
        st.value for st in (NodeState.DEPLOYING, NodeState.CLEANING, NodeState.RELEASING,
                            NodeState.INSPECTING, NodeState.BURNING_IN, NodeState.VERIFYING)
    }:
        raise NodeBusyError(
            f"node {name!r} is {node.state}; power is under the conductor's control until "
            "that step ends"
        )
    node.target_power_state = target
    node.updated_at = utcnow()
    events.record(session, node=node, kind="power", actor=actor,
                  message=f"power {target} requested")
    session.flush()
    return node


def node_filters(
    statement: Select[Any],
    *,
    state: str | None = None,
    node_class: str | None = None,
    rack: str | None = None,
    tenant: str | None = None,
    health: str | None = None,
    maintenance: bool | None = None,
    labels: list[str] | None = None,
    scope: Scope | None = None,
) -> Select[Any]:
    """``statement`` filtered; ``scope`` is the caller's access policy (metalfleet/policy.py)."""
    if scope is not None:
        statement = scope(statement)
    if state:
        statement = statement.where(m.Node.state == state)
    if node_class:
        statement = statement.where(
            m.Node.node_class_id.in_(select(m.NodeClass.id).where(m.NodeClass.name == node_class))
        )
    if rack:
        statement = statement.where(
            m.Node.rack_id.in_(select(m.Rack.id).where(m.Rack.name == rack))
        )
    if tenant:
        statement = statement.where(
            m.Node.tenant_id.in_(select(m.Tenant.id).where(m.Tenant.name == tenant))
        )
    if health:
        statement = statement.where(m.Node.health == health)
    if maintenance is not None:
        statement = statement.where(m.Node.maintenance == maintenance)
    for label in labels or []:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise ValidationError(f"label filter {label!r} must look like key=value")
        statement = statement.where(m.Node.labels[key].as_string() == value)
    return statement


def list_nodes(
    session: Session, *, limit: int = 100, cursor: str | None = None, **filters: Any
) -> tuple[list[m.Node], str | None]:
    statement = node_filters(select(m.Node), **filters)
    rows = list(session.scalars(paginate(statement, m.Node.name, limit, cursor)).unique())
    return split_page(rows, limit, lambda node: node.name)


def to_out(node: m.Node) -> s.NodeOut:
    return s.NodeOut(
        id=node.id,
        name=node.name,
        state=node.state,
        power_state=node.power_state,
        target_power_state=node.target_power_state,
        health=node.health,
        maintenance=node.maintenance,
        maintenance_reason=node.maintenance_reason,
        retired=node.retired,
        progress=s.ProgressOut(percent=node.progress_percent, step=node.progress_step),
        last_error=node.last_error,
        rack=node.rack.name if node.rack else None,
        u_position=node.u_position,
        u_size=node.u_size,
        node_class=node.node_class.name if node.node_class else None,
        tenant=node.tenant.name if node.tenant else None,
        image=node.image.name if node.image else None,
        hardware_type=node.hardware_type,
        bmc=s.BmcOut(
            driver=node.bmc_driver, address=node.bmc_address, username=node.bmc_username,
            verify_tls=node.bmc_verify_tls, error=node.bmc_error,
        ),
        ports=[
            s.PortOut(
                name=p.name, mac=p.mac, network=p.network.name if p.network else None,
                switch=p.switch.name if p.switch else None, switch_port=p.switch_port,
                speed_gbps=p.speed_gbps, pxe=p.pxe,
                switch_network=p.switch_network.name if p.switch_network else None,
            )
            for p in node.ports
        ],
        labels=node.labels or {},
        inventory=node.inventory or {},
        reservation=node.reservation,
        allowed_actions=[a.value for a in allowed_actions(NodeState(node.state))],
        state_changed_at=node.state_changed_at,
        created_at=node.created_at,
        updated_at=node.updated_at,
    )

