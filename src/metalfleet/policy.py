"""Who may read and change what: the one access policy of the API and the dashboard.

Both ask here, never each other (the dashboard calls no API route):

- reads: ``scope(principal, select(Model, ...))`` narrows a query to the rows the principal may
  see; ``load`` fetches one row through it, so a row the caller may not see is answered
  exactly like a missing one (members learn nothing of other tenants);
- changes: ``require(principal, action, target)`` refuses an action the principal's role
  may not take on that target; ``require_role`` for actions on the fleet as a whole;
- output: ``emit(principal, out)`` keeps only the fields the principal's allow-list names
  (members never see a node's BMC or a cluster's scheduler_config; nobody sees a password).

Roles:

- admin, operator: read everything, change the fleet (some changes are admin-only: their
  routes ask ``require_role(ADMIN)``);
- viewer: reads everything, changes nothing;
- member: reads its tenant's nodes, clusters and quotas, the images and node classes, and of
  each of its nodes only the events, acceptance runs, health signals and repair tickets of
  its current tenancy (from ``Node.tenant_since``, inventory/tenancy.py), never a previous
  tenant's; nothing else (no fleet-wide events, racks, networks, tokens, audit, lab);
- node (a monitor credential): nothing here (inventory/node_credentials.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, TypeVarTuple

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, exists, false, select, true
from sqlalchemy.orm import Session, aliased

from metalfleet.core.errors import NotFoundError, PermissionDeniedError
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.inventory.schemas import NodeOut, Role
from metalfleet.inventory.tokens import Principal
from metalfleet.scheduling.schemas import ClusterOut

# Explicit, never frozenset(Role): a new role (NODE) must not become a reader by default.
READ = frozenset({Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.VIEWER})
WRITE = frozenset({Role.ADMIN, Role.OPERATOR})
ADMIN = frozenset({Role.ADMIN})
FLEET_READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER})

# What a member may do to its own nodes and clusters; everything else is for operators.
MEMBER_NODE_ACTIONS = frozenset({"deploy", "undeploy", "power-on", "power-off", "reboot"})
MEMBER_CLUSTER_ACTIONS = frozenset({"create", "delete", "drain", "resume", "power"})
READ_ACTION = "read"

Row = TypeVarTuple("Row")
# What list functions take to narrow their query to the caller's rows (``scoped(principal)``).
Scope = Callable[[Select[Any]], Select[Any]]


def _since_tenancy(node_id: Any, at: Any, tenant_id: str) -> ColumnElement[bool]:
    """The record (``node_id``, ``at``) belongs to the tenant's current tenancy of its node."""
    node = aliased(m.Node)
    return exists().where(node.id == node_id, node.tenant_id == tenant_id,
                          node.tenant_since.is_not(None), at >= node.tenant_since)


# Per table, which rows a member of tenant T reads. A table not listed here: none.
_MEMBER_ROWS: dict[Any, Callable[[str], ColumnElement[bool]]] = {
    m.Node: lambda t: m.Node.tenant_id == t,
    m.Cluster: lambda t: m.Cluster.tenant_id == t,
    m.Quota: lambda t: m.Quota.tenant_id == t,
    m.Tenant: lambda t: m.Tenant.id == t,
    m.Image: lambda t: true(),
    m.NodeClass: lambda t: true(),
    m.Event: lambda t: _since_tenancy(m.Event.node_id, m.Event.time, t),
    hm.AcceptanceRun: lambda t: _since_tenancy(hm.AcceptanceRun.node_id,
                                               hm.AcceptanceRun.started_at, t),
    hm.HealthSignal: lambda t: _since_tenancy(hm.HealthSignal.node_id,
                                              hm.HealthSignal.first_seen, t),
    hm.RepairTicket: lambda t: _since_tenancy(hm.RepairTicket.node_id,
                                              hm.RepairTicket.opened_at, t),
}


def scope(principal: Principal, statement: Select[*Row]) -> Select[*Row]:
    """``statement`` narrowed to the rows ``principal`` may read (its first entity decides)."""
    if principal.role in FLEET_READERS:
        return statement
    if principal.role is not Role.MEMBER or principal.tenant_id is None:
        return statement.where(false())
    entity = statement.column_descriptions[0].get("entity")
    rule = _MEMBER_ROWS.get(entity)
    if rule is None:
        return statement.where(false())
    return statement.where(rule(principal.tenant_id))


def scoped(principal: Principal) -> Scope:
    """``scope`` for this principal, for list functions that build their own query."""
    def narrow(statement: Select[Any]) -> Select[Any]:
        return scope(principal, statement)

    return narrow


def reads_fleet(principal: Principal) -> bool:
    """Whether the principal reads the whole fleet (not only a tenant's part of it)."""
    return principal.role in FLEET_READERS


def member_reads(model: Any) -> bool:
    """Whether members read any rows of ``model``'s table (their own, or all)."""
    return model in _MEMBER_ROWS


def load(session: Session, principal: Principal, statement: Select[Any], missing: str) -> Any:
    """The one row of ``statement`` the principal may read; else 404 with ``missing``, the
    same answer whether the row does not exist or belongs to someone else."""
    row = session.scalars(scope(principal, statement).limit(1)).unique().first()
    if row is None:
        raise NotFoundError(missing)
    return row


def node(session: Session, principal: Principal, name: str) -> m.Node:
    """The node named ``name``, if the principal may read it."""
    found: m.Node = load(session, principal, select(m.Node).where(m.Node.name == name),
                         f"no node named {name!r}; list nodes with GET /v1/nodes")
    return found


def cluster(session: Session, principal: Principal, name: str) -> m.Cluster:
    """The cluster named ``name``, if the principal may read it."""
    found: m.Cluster = load(
        session, principal, select(m.Cluster).where(m.Cluster.name == name),
        f"no cluster named {name!r}; list them with GET /v1/clusters")
    return found


def require_role(principal: Principal, roles: frozenset[Role], what: str) -> None:
    """Refuse (403) ``what`` unless the principal has one of ``roles``."""
    if principal.role not in roles:
        wanted = " or ".join(sorted(r.value for r in roles))
        raise PermissionDeniedError(
            f"{what} needs the {wanted} role; token {principal.name!r} is {principal.role.value}"
        )


def permitted(principal: Principal, action: str, target: type[Any]) -> bool:
    """Whether the principal's role may take ``action`` on a ``target`` (a model class) it
    can read. Reading is ``"read"``; node actions are the lifecycle, power and maintenance
    action names; cluster actions are delete, drain, resume, power, configure, push."""
    if action == READ_ACTION:
        return principal.role in READ
    if principal.role in WRITE:
        return True
    if principal.role is Role.MEMBER:
        if target is m.Node:
            return action in MEMBER_NODE_ACTIONS
        if target is m.Cluster:
            return action in MEMBER_CLUSTER_ACTIONS
    return False


_NOUN = {m.Node: "nodes", m.Cluster: "clusters"}


def require(principal: Principal, action: str,
            target: m.Node | m.Cluster | type[m.Node] | type[m.Cluster]) -> None:
    """Refuse (403) ``action`` on ``target`` unless the principal's role may take it. Load
    the target through ``node``/``cluster`` first (so it is one the principal can read); the
    class stands for a target not made yet (``create``)."""
    kind = target if isinstance(target, type) else type(target)
    if not permitted(principal, action, kind):
        raise PermissionDeniedError(
            f"token {principal.name!r} ({principal.role.value}) may not {action} {_NOUN[kind]}"
        )


# --- what each reader is shown: allow-lists --------------------------------------------

# A field spec: field name -> None (shown as it is) or the spec of its sub-fields. A field a
# spec does not name is withheld: null in the answer (the schema declares it optional). A new
# field of an output schema is therefore shown to nobody until someone lists it here.
Fields = Mapping[str, "Fields | None"]

_BMC: Fields = dict.fromkeys(("driver", "address", "username", "verify_tls", "error"))
_NODE: Fields = dict.fromkeys((
    "id", "name", "state", "power_state", "target_power_state", "health", "maintenance",
    "maintenance_reason", "retired", "progress", "last_error", "rack", "u_position", "u_size",
    "node_class", "tenant", "image", "hardware_type", "ports", "labels", "inventory",
    "allowed_actions", "state_changed_at", "created_at", "updated_at"))
_CLUSTER: Fields = dict.fromkeys((
    "id", "name", "tenant", "scheduler", "node_class", "count", "constraints", "state",
    "leaves", "racks", "nodes", "created_at"))
# How metalfleet reaches a cluster's scheduler: paths, argv (values after --token, --password
# and --client-key-data already masked by allocation.redact), timeouts; secrets live in files.
_SLURM_POWER: Fields = dict.fromkeys((
    "api_url", "token_file", "command", "suspend_time_s", "suspend_timeout_s",
    "resume_timeout_s", "exclude"))
_SCHEDULER_CONFIG: Fields = {
    "slurm": {**dict.fromkeys(("conf", "prefix", "remote_shell", "timeout_s", "site",
                                "max_time", "qos")), "power_saving": _SLURM_POWER},
    "kubernetes": dict.fromkeys(("kubectl", "remote_shell", "timeout_s", "service_network",
                                 "service_addresses", "api_server_endpoint",
                                 "ca_cert_hashes")),
}
_STAFF_VIEW: dict[type[BaseModel], Fields] = {
    NodeOut: {**_NODE, "bmc": _BMC, "reservation": None},
    ClusterOut: {**_CLUSTER, "scheduler_config": _SCHEDULER_CONFIG},
}
# Members: never the BMC (address, user), the conductor holding the node, or how the
# cluster's scheduler is reached.
_MEMBER_VIEW: dict[type[BaseModel], Fields] = {NodeOut: _NODE, ClusterOut: _CLUSTER}

Shown = TypeVar("Shown", bound=BaseModel)


def _pick(value: Any, spec: Fields | None) -> Any:
    if spec is None or value is None:
        return value
    if isinstance(value, BaseModel):
        return type(value).model_validate(
            {name: _pick(getattr(value, name), sub) for name, sub in spec.items()})
    if isinstance(value, dict):
        return {name: _pick(value[name], sub) for name, sub in spec.items() if name in value}
    return None  # a shape the spec does not describe: withheld


def emit(principal: Principal, out: Shown) -> Shown:
    """``out`` as ``principal`` may see it: only the fields its role's allow-list names."""
    view = _STAFF_VIEW if principal.role in FLEET_READERS else _MEMBER_VIEW
    spec = view.get(type(out))
    if spec is None:
        raise LookupError(f"policy.py has no allow-list for {type(out).__name__}")
    shown: Shown = _pick(out, spec)
    return shown


__all__ = [
    "ADMIN",
    "FLEET_READERS",
    "MEMBER_CLUSTER_ACTIONS",
    "MEMBER_NODE_ACTIONS",
    "READ",
    "WRITE",
    "Scope",
    "cluster",
    "emit",
    "load",
    "member_reads",
    "node",
    "permitted",
    "reads_fleet",
    "require",
    "require_role",
    "scope",
    "scoped",
]
