"""Generic create/read/update/delete for the fleet's named resources.

Each resource kind declares its model, its schemas and its references to other resources
(by name in the API, by id in the database); this module does the rest once for all.
Nodes have their own service (inventory/nodes.py) because they carry a lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError, NotFoundError, ValidationError
from metalfleet.db import models as m
from metalfleet.db.base import Base
from metalfleet.inventory import schemas as s
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.pagination import paginate, split_page

if TYPE_CHECKING:
    from metalfleet.policy import Scope


@dataclass(frozen=True)
class Ref:
    """A reference from one resource to another by name."""

    target: type[Base]
    column: str  # our foreign-key column, e.g. "site_id"
    relation: str  # our relationship attribute, e.g. "site"


@dataclass(frozen=True)
class ResourceKind:
    singular: str
    plural: str
    model: type[Base]
    create_schema: type[BaseModel]
    patch_schema: type[BaseModel]
    out_schema: type[BaseModel]
    refs: dict[str, Ref] = field(default_factory=dict)
    filters: tuple[str, ...] = ()


KINDS: dict[str, ResourceKind] = {
    kind.plural: kind
    for kind in (
        ResourceKind("site", "sites", m.Site, s.SiteIn, s.SitePatch, s.SiteOut),
        ResourceKind(
            "rack", "racks", m.Rack, s.RackIn, s.RackPatch, s.RackOut,
            refs={"site": Ref(m.Site, "site_id", "site")}, filters=("site",),
        ),
        ResourceKind(
            "switch", "switches", m.Switch, s.SwitchIn, s.SwitchPatch, s.SwitchOut,
            refs={"rack": Ref(m.Rack, "rack_id", "rack")}, filters=("rack", "role", "fabric"),
        ),
        ResourceKind(
            "switch link", "switch-links", m.SwitchLink, s.SwitchLinkIn, s.SwitchLinkPatch,
            s.SwitchLinkOut,
            refs={
                "switch": Ref(m.Switch, "switch_id", "switch"),
                "peer_switch": Ref(m.Switch, "peer_switch_id", "peer_switch"),
            },
        ),
        ResourceKind(
            "network", "networks", m.Network, s.NetworkIn, s.NetworkPatch, s.NetworkOut,
            refs={"site": Ref(m.Site, "site_id", "site"),
                  "tenant": Ref(m.Tenant, "tenant_id", "tenant")},
            filters=("site", "role", "tenant"),
        ),
        ResourceKind(
            "node class", "node-classes", m.NodeClass, s.NodeClassIn, s.NodeClassPatch,
            s.NodeClassOut,
        ),
        ResourceKind("tenant", "tenants", m.Tenant, s.TenantIn, s.TenantPatch, s.TenantOut),
        ResourceKind("image", "images", m.Image, s.ImageIn, s.ImagePatch, s.ImageOut),
    )
}


def resolve_ref(session: Session, target: type[Base], name: str, what: str) -> Any:
    model: Any = target
    obj = session.scalar(select(model).where(model.name == name))
    if obj is None:
        raise ValidationError(
            f"{what} {name!r} does not exist; create it first or correct the name",
            field=what,
        )
    return obj


def missing(kind: ResourceKind, name: str) -> str:
    return f"no {kind.singular} named {name!r}; list them with GET /v1/{kind.plural}"


def get(session: Session, kind: ResourceKind, name: str) -> Any:
    model: Any = kind.model
    obj = session.scalar(select(model).where(model.name == name))
    if obj is None:
        raise NotFoundError(missing(kind, name))
    return obj


def _apply(session: Session, kind: ResourceKind, obj: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        ref = kind.refs.get(key)
        if ref is not None:
            target = resolve_ref(session, ref.target, value, key) if value is not None else None
            setattr(obj, ref.relation, target)
            setattr(obj, ref.column, target.id if target is not None else None)
        else:
            setattr(obj, key, value.value if hasattr(value, "value") else value)


def _flush(session: Session, kind: ResourceKind, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(
            f"the {kind.singular} {name!r} clashes with an existing one (a unique name, "
            f"address or port is taken); pick another value or update the existing one"
        ) from exc


def _check_lab_shortcuts(kind: ResourceKind, values: dict[str, Any], lab: LabGate | None) -> None:
    """Image locations may be file:// only where the lab's shortcuts are open."""
    if kind.model is m.Image:
        (lab or LabGate.closed()).check_image_location(values.get("location"))


def create(session: Session, kind: ResourceKind, data: BaseModel, *,
           lab: LabGate | None = None) -> Any:
    values = data.model_dump(mode="python")
    _check_lab_shortcuts(kind, values, lab)
    name = values["name"]
    model: Any = kind.model
    if session.scalar(select(model.id).where(model.name == name)) is not None:
        raise ConflictError(
            f"a {kind.singular} named {name!r} already exists; pick another name or "
            f"PATCH /v1/{kind.plural}/{name}"
        )
    obj = kind.model()
    _apply(session, kind, obj, values)
    session.add(obj)
    _flush(session, kind, name)
    return obj


def update(session: Session, kind: ResourceKind, name: str, patch: BaseModel, *,
           lab: LabGate | None = None) -> Any:
    obj = get(session, kind, name)
    values = patch.model_dump(mode="python", exclude_unset=True)
    _check_lab_shortcuts(kind, values, lab)
    _apply(session, kind, obj, values)
    if kind.model is m.Network:
        try:
            s.check_addresses_inside(obj.cidr, obj.gateway, obj.dhcp_start, obj.dhcp_end)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
    _flush(session, kind, name)
    return obj


def delete(session: Session, kind: ResourceKind, name: str) -> None:
    obj = get(session, kind, name)
    session.delete(obj)
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(
            f"the {kind.singular} {name!r} is still in use (nodes, racks or other resources "
            f"refer to it); remove those references first"
        ) from exc


def list_page(
    session: Session, kind: ResourceKind, *, limit: int = 100, cursor: str | None = None,
    filters: dict[str, str | None] | None = None, scope: Scope | None = None,
) -> tuple[list[Any], str | None]:
    """A page of ``kind``; ``scope`` is the caller's access policy (metalfleet/policy.py)."""
    model: Any = kind.model
    statement = select(model)
    if scope is not None:
        statement = scope(statement)
    for key, value in (filters or {}).items():
        if value is None:
            continue
        ref = kind.refs.get(key)
        if ref is not None:
            target: Any = ref.target
            statement = statement.where(
                getattr(model, ref.column).in_(select(target.id).where(target.name == value))
            )
        else:
            statement = statement.where(getattr(model, key) == value)
    rows = list(session.scalars(paginate(statement, model.name, limit, cursor)).unique())
    return split_page(rows, limit, lambda obj: obj.name)


def to_out(kind: ResourceKind, obj: Any) -> BaseModel:
    values: dict[str, Any] = {}
    for name in kind.out_schema.model_fields:
        ref = kind.refs.get(name)
        if ref is not None:
            target = getattr(obj, ref.relation)
            values[name] = target.name if target is not None else None
        else:
            values[name] = getattr(obj, name)
    return kind.out_schema.model_validate(values)
