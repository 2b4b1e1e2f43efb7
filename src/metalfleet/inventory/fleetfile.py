"""The declarative fleet file: plan it against the live fleet, apply it in one transaction.

Items are matched to the fleet by name and come out as ``create``, ``update`` (with the
fields that change) or ``unchanged``; what the fleet holds and the file does not is
``unmanaged``, or ``delete`` with prune (only in the sections the file lists). Every
problem is collected first, with its path in the file; with any, nothing is applied. Apply
goes through the same service functions as the API (resources.*, nodes.*), so the same
rules hold and the same events are written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.inventory import events, nodes, resources
from metalfleet.inventory import schemas as s
from metalfleet.inventory.fleetfile_checks import FleetView, label
from metalfleet.inventory.fleetfile_schema import (
    KIND_OF,
    SECTIONS,
    Change,
    ChangeAction,
    FieldChange,
    FileError,
    Item,
    PlanOut,
    Section,
    Summary,
    parse,
)
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.resources import ResourceKind
from metalfleet.secrets import CredentialCipher

A = ChangeAction
PLACEMENT = ("rack", "u_position", "u_size")
SECTION_ORDER = {section.key: order for order, section in enumerate(SECTIONS)}


class FleetFileError(ValidationError):
    title = "Invalid fleet file"


def recorded_key(key: str) -> bool:
    """driver_info keys the conductor writes (BMC facts, results, timings): not the file's."""
    return key == "bmc_facts" or key.startswith("last_")


def _kind(section: Section) -> ResourceKind:
    assert section.resource is not None
    return resources.KINDS[section.resource]


@dataclass
class Op:
    section: str
    name: str
    action: ChangeAction
    data: Any = None  # the *In model, to create
    patch: Any = None  # the *Patch model, to update
    target: Any = None  # the ORM object being updated
    vacate_ports: bool = False  # free its MACs first, so two nodes can swap them
    vacate_place: bool = False  # free its rack units first, so two nodes can swap them


@dataclass
class Plan:
    ops: list[Op]
    changes: list[Change]

    def out(self, *, applied: bool) -> PlanOut:
        summary = Summary()
        for change in self.changes:
            action = change.action.value
            setattr(summary, action, getattr(summary, action) + 1)
        return PlanOut(changes=self.changes, summary=summary, applied=applied)


def _load_fleet(session: Session) -> dict[str, dict[str, Any]]:
    fleet: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        model: Any = m.Node if section.resource is None else _kind(section).model
        fleet[section.key] = {obj.name: obj for obj in session.scalars(select(model)).unique()}
    return fleet


def _name(obj: Any) -> str | None:
    return obj.name if obj is not None else None


def _port_values(port: m.Port) -> dict[str, Any]:
    return {"name": port.name, "mac": port.mac, "network": _name(port.network),
            "switch": _name(port.switch), "switch_port": port.switch_port,
            "speed_gbps": port.speed_gbps, "pxe": port.pxe}


def _node_file_values(data: s.NodeIn) -> dict[str, Any]:
    return {
        "rack": data.rack, "u_position": data.u_position, "u_size": data.u_size,
        "node_class": data.node_class, "tenant": data.tenant,
        "hardware_type": (data.hardware_type or data.bmc.driver).value,
        "driver_info": data.driver_info, "labels": data.labels,
        "ports": sorted((p.model_dump(mode="json") for p in data.ports), key=lambda p: p["name"]),
        "bmc.driver": data.bmc.driver.value, "bmc.address": data.bmc.address,
        "bmc.username": data.bmc.username, "bmc.verify_tls": data.bmc.verify_tls,
    }


def _node_fleet_values(node: m.Node) -> dict[str, Any]:
    return {
        "rack": _name(node.rack), "u_position": node.u_position, "u_size": node.u_size,
        "node_class": _name(node.node_class), "tenant": _name(node.tenant),
        "hardware_type": node.hardware_type,
        "driver_info": {k: v for k, v in (node.driver_info or {}).items() if not recorded_key(k)},
        "labels": node.labels or {},
        "ports": sorted((_port_values(p) for p in node.ports), key=lambda p: p["name"]),
        "bmc.driver": node.bmc_driver, "bmc.address": node.bmc_address,
        "bmc.username": node.bmc_username, "bmc.verify_tls": node.bmc_verify_tls,
    }


PASSWORD_NOT_COMPARED = "will be set (not compared)"


def _password_note(stored: str | None, bmc: s.BmcIn) -> str | None:
    """What happens to the BMC password, in words. A password the file gives is never
    compared with the stored one: a plan that said "unchanged" or "changed" would let anyone
    who may plan test guesses of a BMC password (an oracle). A file without a ``password``
    key keeps the stored one; ``password: null`` removes it."""
    if "password" not in bmc.model_fields_set:
        return None
    if bmc.password is None:
        return "password removed" if stored else None
    return PASSWORD_NOT_COMPARED


class _Planner(FleetView):
    """Compares the file with the fleet. It holds no credential key: it cannot read a stored
    BMC password, let alone compare one."""

    def __init__(self, session: Session, document: Any, prune: bool) -> None:
        super().__init__(parse(document), _load_fleet(session), prune)
        self.ops: list[Op] = []
        self.changes: list[Change] = []

    def run(self) -> Plan:
        for section in SECTIONS:
            for item in self.parsed.valid(section.key):
                if section.key == "nodes":
                    self._add(*self._node_op(item))
                else:
                    self._add(*self._resource_op(section, item))
            for name in sorted(set(self.fleet[section.key]) - self.names[section.key]):
                if (section.key, name) in self.deleted:
                    self._add(Op(section.key, name, A.DELETE), {})
                else:
                    self._add(Op(section.key, name, A.UNMANAGED), {})
        self.check()
        if self.parsed.errors:
            raise _rejected(self.parsed.errors)
        return Plan(self.ops, self.changes)

    def _add(self, op: Op, fields: dict[str, FieldChange]) -> None:
        self.changes.append(Change(kind=KIND_OF[op.section], name=op.name, action=op.action,
                                   fields=fields))
        if op.action not in (A.UNCHANGED, A.UNMANAGED):
            self.ops.append(op)

    # --- comparing items with the fleet ----------------------------------------------

    def _resource_op(self, section: Section, item: Item) -> tuple[Op, dict[str, FieldChange]]:
        kind, data = _kind(section), item.data
        obj = self.fleet[section.key].get(data.name)
        if obj is None:
            return Op(section.key, data.name, A.CREATE, data=data), {}
        new = data.model_dump(mode="json", exclude={"name"})
        old = {key: _name(getattr(obj, key)) if key in kind.refs else getattr(obj, key)
               for key in new}
        fields = {k: FieldChange(old=old[k], new=new[k]) for k in new if old[k] != new[k]}
        fixed = [k for k in fields if k not in kind.patch_schema.model_fields]
        for key in fixed:
            self.error(f"{item.path}.{key}", f"the {key} of {label(section.key)} "
                       f"{data.name!r} cannot change in place ({old[key]!r} -> {new[key]!r}); "
                       "delete it from the fleet, then apply again to create it anew")
        if not fields:
            return Op(section.key, data.name, A.UNCHANGED), {}
        patch = kind.patch_schema.model_validate({k: new[k] for k in fields if k not in fixed})
        return Op(section.key, data.name, A.UPDATE, patch=patch, target=obj), fields

    def _node_op(self, item: Item) -> tuple[Op, dict[str, FieldChange]]:
        data: s.NodeIn = item.data
        node: m.Node | None = self.fleet["nodes"].get(data.name)
        if node is None:
            return Op("nodes", data.name, A.CREATE, data=data), {}
        new, old = _node_file_values(data), _node_fleet_values(node)
        fields = {k: FieldChange(old=old[k], new=new[k]) for k in new if old[k] != new[k]}
        if fields.pop("hardware_type", None) is not None:
            self.error(f"{item.path}.hardware_type", f"node {data.name!r} is "
                       f"{old['hardware_type']}; its hardware type cannot change in place")
        note = _password_note(node.bmc_password_encrypted, data.bmc)
        if note:
            fields["bmc.password"] = FieldChange(note=note)
        if not fields:
            return Op("nodes", data.name, A.UNCHANGED), {}
        values: dict[str, Any] = {k: getattr(data, k) for k in fields
                                  if k in ("rack", "u_position", "u_size", "node_class",
                                           "tenant", "labels")}
        if "driver_info" in fields:  # keep what the conductor recorded
            kept = {k: v for k, v in (node.driver_info or {}).items() if recorded_key(k)}
            values["driver_info"] = {**kept, **data.driver_info}
        if any(k.startswith("bmc.") for k in fields):
            values["bmc"] = data.bmc
        if "ports" in fields:
            values["ports"] = data.ports
        vacate_place = node.u_position is not None and any(k in fields for k in PLACEMENT)
        if vacate_place:
            values["u_position"] = data.u_position
        op = Op("nodes", data.name, A.UPDATE, patch=s.NodePatch.model_validate(values),
                target=node, vacate_ports="ports" in fields, vacate_place=vacate_place)
        return op, fields

def _in_file_order(error: FileError) -> tuple[int, int]:
    match = re.match(r"(\w+)(?:\[(\d+)\])?", error.path)
    if match is None:
        return (-1, -1)
    return (SECTION_ORDER.get(match[1], -1), int(match[2]) if match[2] else -1)


def _rejected(errors: list[FileError]) -> FleetFileError:
    errors = sorted(errors, key=_in_file_order)
    shown = "; ".join(f"{e.path}: {e.message}" for e in errors[:5])
    more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
    return FleetFileError(
        f"the fleet file has {len(errors)} error(s) and nothing was applied: {shown}{more}",
        errors=[e.as_dict() for e in errors],
    )


def make_plan(session: Session, document: Any, *, prune: bool) -> Plan:
    """What applying ``document`` would do; raises FleetFileError listing every problem."""
    return _Planner(session, document, prune).run()


def plan(session: Session, document: Any, *, prune: bool) -> PlanOut:
    return make_plan(session, document, prune=prune).out(applied=False)


def apply(session: Session, document: Any, *, prune: bool, cipher: CredentialCipher,
          actor: str, lab: LabGate | None = None) -> PlanOut:
    """Plan, then carry the plan out in the caller's transaction (commit is the caller's)."""
    result = make_plan(session, document, prune=prune)
    execute(session, result, cipher, actor=actor, lab=lab)
    return result.out(applied=True)


def execute(session: Session, plan: Plan, cipher: CredentialCipher, *, actor: str,
            lab: LabGate | None = None) -> None:
    def ops(section: str, action: ChangeAction) -> list[Op]:
        return [op for op in plan.ops if op.section == section and op.action is action]

    # Nodes first: nothing refers to them, and deleting them frees MACs and rack units.
    for op in ops("nodes", A.DELETE):
        nodes.delete_node(session, op.name, actor=actor)
    resource_sections = [section for section in SECTIONS if section.resource is not None]
    for section in resource_sections:
        for op in ops(section.key, A.UPDATE):
            resources.update(session, _kind(section), op.name, op.patch, lab=lab)
        for op in ops(section.key, A.CREATE):
            resources.create(session, _kind(section), op.data, lab=lab)
    updates = ops("nodes", A.UPDATE)
    for op in updates:
        if op.vacate_ports:
            op.target.ports.clear()
        if op.vacate_place:
            op.target.u_position = None
    session.flush()
    for op in updates:
        nodes.update_node(session, op.name, op.patch, cipher, actor=actor, lab=lab)
    for op in ops("nodes", A.CREATE):
        nodes.enroll(session, op.data, cipher, actor=actor, lab=lab)
    for section in reversed(resource_sections):
        for op in ops(section.key, A.DELETE):
            resources.delete(session, _kind(section), op.name)
    if plan.ops:
        summary = plan.out(applied=True).summary
        events.record(session, node=None, kind="info", actor=actor,
                      message=f"fleet file applied: {summary.create} created, "
                      f"{summary.update} updated, {summary.delete} deleted",
                      data=summary.model_dump())
        session.flush()
