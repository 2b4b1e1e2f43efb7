"""What the dashboard pages show, read from the database. Reads only: actions go through the
same service functions as the API (see web/actions.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from metalfleet import policy
from metalfleet.core.states import WORK_STATES, Health, NodeState
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.health_models import HealthSignal, RepairTicket
from metalfleet.inventory import nodes
from metalfleet.inventory.tokens import Principal

WORK_STATE_VALUES = frozenset(state.value for state in WORK_STATES)
SORT_KEYS = ("name", "state", "class", "rack", "health", "tenant", "power", "changed")


def visible_nodes(session: Session, caller: Principal, *, text: str = "",
                  **filters: Any) -> list[m.Node]:
    """The nodes the access policy lets the caller read, through the API's filter."""
    statement = nodes.node_filters(select(m.Node), scope=policy.scoped(caller),
                                   **{k: v for k, v in filters.items() if v})
    if text:
        pattern = f"%{text}%"
        statement = statement.where(or_(
            m.Node.name.ilike(pattern), m.Node.state.ilike(pattern),
            m.Node.last_error.ilike(pattern), m.Node.maintenance_reason.ilike(pattern),
        ))
    return list(session.scalars(statement.order_by(m.Node.name)).unique())


def _sort_value(node: m.Node, key: str) -> Any:
    values: dict[str, Any] = {
        "state": node.state,
        "class": node.node_class.name if node.node_class else "",
        "rack": (node.rack.name if node.rack else "", node.u_position or 0),
        "health": node.health,
        "tenant": node.tenant.name if node.tenant else "",
        "power": node.power_state,
        "changed": node.state_changed_at.isoformat() if node.state_changed_at else "",
    }
    return values.get(key, node.name)


def sort_nodes(rows: list[m.Node], key: str) -> list[m.Node]:
    """``key`` is one of SORT_KEYS, optionally prefixed with '-' for descending."""
    descending = key.startswith("-")
    name = key.removeprefix("-")
    if name not in SORT_KEYS:
        name = "name"
    by_name = sorted(rows, key=lambda node: node.name)
    if name == "name":
        return by_name[::-1] if descending else by_name
    # sorted() is stable, also in reverse: equal values stay in name order.
    return sorted(by_name, key=lambda node: _sort_value(node, name), reverse=descending)


def is_allocated(node: m.Node) -> bool:
    return node.tenant_id is not None or node.state == NodeState.ACTIVE.value


def is_free(node: m.Node) -> bool:
    return (node.state == NodeState.AVAILABLE.value and not is_allocated(node)
            and not node.maintenance and not node.retired)


def gpu_count(node: m.Node) -> int:
    gpus = (node.inventory or {}).get("gpus")
    if isinstance(gpus, list) and gpus:
        return len(gpus)
    return node.node_class.gpu_count if node.node_class else 0


@dataclass
class Overview:
    total: int = 0
    by_state: list[tuple[str, int]] = field(default_factory=list)
    by_health: list[tuple[str, int]] = field(default_factory=list)
    by_class: list[tuple[str, int]] = field(default_factory=list)
    allocated: int = 0
    free: int = 0
    unready: int = 0
    gpus_allocated: int = 0
    gpus_free: int = 0
    maintenance: int = 0
    busy: int = 0
    failures: list[m.Event] = field(default_factory=list)
    signals: list[tuple[HealthSignal, str]] = field(default_factory=list)
    tickets: list[RepairTicket] = field(default_factory=list)


def overview(session: Session, caller: Principal) -> Overview:
    rows = visible_nodes(session, caller)
    result = Overview(total=len(rows))
    order = {state.value: i for i, state in enumerate(NodeState)}
    states = Counter(node.state for node in rows)
    result.by_state = sorted(states.items(), key=lambda item: order.get(item[0], 99))
    result.by_health = sorted(Counter(node.health for node in rows).items())
    result.by_class = sorted(Counter(
        node.node_class.name if node.node_class else "(none)" for node in rows).items())
    for node in rows:
        if is_allocated(node):
            result.allocated += 1
            result.gpus_allocated += gpu_count(node)
        elif is_free(node):
            result.free += 1
            result.gpus_free += gpu_count(node)
        else:
            result.unready += 1
        result.maintenance += node.maintenance
        result.busy += node.state in WORK_STATE_VALUES
    result.failures = recent_failures(session, caller)
    result.signals = active_signals(session, caller)
    result.tickets = open_tickets(session, caller)
    return result


def active_signals(session: Session, caller: Principal, node_name: str | None = None,
                   limit: int = 50) -> list[tuple[HealthSignal, str]]:
    """Active health findings (alerts, BMC, in-band checks) the caller may read, newest
    first."""
    statement = (select(HealthSignal, m.Node.name).join(m.Node, m.Node.id == HealthSignal.node_id)
                 .where(HealthSignal.status == "active"))
    if node_name is not None:
        statement = statement.where(m.Node.name == node_name)
    statement = policy.scope(caller, statement)
    rows = session.execute(statement.order_by(HealthSignal.last_seen.desc()).limit(limit))
    return [(signal, name) for signal, name in rows.all()]


def open_tickets(session: Session, caller: Principal, node_name: str | None = None
                 ) -> list[RepairTicket]:
    statement = select(RepairTicket).where(RepairTicket.status == "open")
    if node_name is not None:
        statement = statement.where(RepairTicket.node_name == node_name)
    statement = policy.scope(caller, statement)
    return list(session.scalars(statement.order_by(RepairTicket.opened_at.desc()).limit(50)))


def recent_failures(session: Session, caller: Principal, days: int = 7,
                    limit: int = 20) -> list[m.Event]:
    statement = policy.scope(caller, select(m.Event).where(
        m.Event.time >= utcnow() - timedelta(days=days),
        or_(m.Event.kind == "error", m.Event.to_state.like("%-failed")),
    ))
    return list(session.scalars(statement.order_by(m.Event.id.desc()).limit(limit)))


@dataclass
class RackSlot:
    """Something drawn in a rack: a node or a switch, from ``top`` U down ``size`` units."""

    kind: str
    name: str
    top: int
    size: int
    node: m.Node | None = None
    detail: str = ""


@dataclass
class RackView:
    rack: m.Rack
    slots: list[RackSlot]
    unplaced: list[m.Node]


def racks(session: Session, caller: Principal) -> list[RackView]:
    rows = visible_nodes(session, caller)
    switches = list(session.scalars(policy.scope(  # members read no switches (as the API)
        caller, select(m.Switch).where(m.Switch.rack_id.is_not(None)))))
    views = []
    for rack in session.scalars(select(m.Rack).order_by(m.Rack.name)):
        mine = [node for node in rows if node.rack_id == rack.id]
        if not mine and not policy.reads_fleet(caller):  # a member: only its nodes' racks
            continue
        slots = [RackSlot("node", node.name, node.u_position + node.u_size - 1, node.u_size,
                          node) for node in mine if node.u_position is not None]
        slots += [RackSlot("switch", sw.name, sw.u_position, 1, detail=f"{sw.fabric} {sw.role}")
                  for sw in switches if sw.rack_id == rack.id and sw.u_position is not None]
        views.append(RackView(rack, sorted(slots, key=lambda slot: -slot.top),
                              [node for node in mine if node.u_position is None]))
    return views


def node_events(session: Session, caller: Principal, name: str,
                limit: int = 60) -> list[m.Event]:
    """The node's latest events the caller may read, newest first."""
    statement = policy.scope(caller, select(m.Event).where(m.Event.node_name == name))
    return list(session.scalars(statement.order_by(m.Event.id.desc()).limit(limit)))


def tenants(session: Session, caller: Principal) -> list[tuple[m.Tenant, list[m.Node]]]:
    statement = policy.scope(caller, select(m.Tenant).order_by(m.Tenant.name))
    rows = visible_nodes(session, caller)
    return [(tenant, [node for node in rows if node.tenant_id == tenant.id])
            for tenant in session.scalars(statement)]


def images(session: Session) -> list[m.Image]:
    return list(session.scalars(select(m.Image).order_by(m.Image.name)))


def _names(session: Session, caller: Principal, column: Any) -> list[str]:
    """The names in ``column`` the caller may read (policy.scope: a member gets its own
    tenant, and no racks), sorted."""
    return list(session.scalars(policy.scope(caller, select(column).order_by(column))))


def choices_for_enrolment(session: Session, caller: Principal) -> dict[str, list[str]]:
    return {
        "rack": _names(session, caller, m.Rack.name),
        "node_class": _names(session, caller, m.NodeClass.name),
        "tenant": tenant_names(session, caller),
    }


def tenant_names(session: Session, caller: Principal) -> list[str]:
    return _names(session, caller, m.Tenant.name)


def filter_choices(session: Session, caller: Principal) -> dict[str, list[str]]:
    return {
        "state": [state.value for state in NodeState],
        "class": _names(session, caller, m.NodeClass.name),
        "rack": _names(session, caller, m.Rack.name),
        "health": [health.value for health in Health],
    }
