"""The fleet file's shape: its sections, parsing with every error collected, plan models.

A fleet file is a mapping of sections (``sites``, ``racks``, ... ``nodes``), each a list of
items in exactly the shape the API takes to create that resource (the ``*In`` schemas).
Parsing never stops at the first problem: every error is reported with its path in the file,
e.g. ``nodes[3].bmc.address``. Checks against the live fleet are in inventory/fleetfile.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, Field

from metalfleet.inventory import schemas as s

SUPPORTED_VERSION = 1


@dataclass(frozen=True)
class Section:
    key: str  # the key in the file, e.g. "switch_links"
    kind: str  # the kind in a plan, e.g. "switch_link"
    schema: type[BaseModel]
    resource: str | None  # the key in resources.KINDS; None for nodes


# In dependency order: everything refers only to sections before it.
SECTIONS: tuple[Section, ...] = (
    Section("sites", "site", s.SiteIn, "sites"),
    Section("racks", "rack", s.RackIn, "racks"),
    Section("switches", "switch", s.SwitchIn, "switches"),
    Section("switch_links", "switch_link", s.SwitchLinkIn, "switch-links"),
    Section("networks", "network", s.NetworkIn, "networks"),
    Section("node_classes", "node_class", s.NodeClassIn, "node-classes"),
    Section("tenants", "tenant", s.TenantIn, "tenants"),
    Section("images", "image", s.ImageIn, "images"),
    Section("nodes", "node", s.NodeIn, None),
)
BY_KEY = {section.key: section for section in SECTIONS}
KIND_OF = {section.key: section.kind for section in SECTIONS}


# --- what the API takes and answers ------------------------------------------------------


class FleetIn(s.Strict):
    fleet: dict[str, Any] = Field(description="the fleet file (YAML turned into JSON)")
    prune: bool = Field(
        False,
        description="delete what the fleet holds but the file does not, in each section the "
        "file lists (an empty list prunes the whole section); sections the file leaves out "
        "stay unmanaged",
    )


class ChangeAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    UNMANAGED = "unmanaged"
    DELETE = "delete"


class FieldChange(BaseModel):
    old: Any = None
    new: Any = None
    note: str | None = Field(default=None, description="for secrets, which are never shown")


class Change(BaseModel):
    kind: str
    name: str
    action: ChangeAction
    fields: dict[str, FieldChange] = Field(default_factory=dict)


class Summary(BaseModel):
    create: int = 0
    update: int = 0
    unchanged: int = 0
    delete: int = 0
    unmanaged: int = 0


class PlanOut(BaseModel):
    changes: list[Change]
    summary: Summary
    applied: bool = Field(description="false for a plan; true once an apply has committed")


@dataclass(frozen=True)
class FileError:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


# --- parsing -----------------------------------------------------------------------------


@dataclass
class Item:
    section: str
    index: int
    raw: Any
    data: Any = None  # the validated *In model, or None when the item has schema errors

    @property
    def path(self) -> str:
        return f"{self.section}[{self.index}]"

    @property
    def name(self) -> str | None:
        name = self.raw.get("name") if isinstance(self.raw, dict) else None
        return name if isinstance(name, str) else None


@dataclass
class ParsedFleet:
    items: dict[str, list[Item]] = field(default_factory=lambda: {s.key: [] for s in SECTIONS})
    present: set[str] = field(default_factory=set)  # the sections the file lists
    errors: list[FileError] = field(default_factory=list)

    def valid(self, section: str) -> list[Item]:
        return [item for item in self.items[section] if item.data is not None]

    def names(self, section: str) -> set[str]:
        """Names in a section, schema errors or not (so one bad item causes one error)."""
        return {item.name for item in self.items[section] if item.name is not None}

    def error(self, path: str, message: str) -> None:
        self.errors.append(FileError(path, message))


def join_path(base: str, loc: tuple[int | str, ...] | list[Any]) -> str:
    path = base
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error: Any) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown field; remove it or correct its spelling"
    if kind == "string_pattern_mismatch" and "a-z0-9" in str(error.get("ctx", {})):
        return ("not a valid name: lower-case letters, digits, '.', '_' and '-', starting "
                "and ending with a letter or digit, at most 63 characters")
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def network_address_errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every gateway/DHCP address outside its network, as (field, message)."""
    try:
        network = ipaddress.ip_network(str(raw.get("cidr")), strict=True)
    except ValueError:
        return []  # the cidr field reports its own error
    found: list[tuple[str, str]] = []
    addresses: dict[str, Any] = {}
    for label in ("gateway", "dhcp_start", "dhcp_end"):
        value = raw.get(label)
        if value is None:
            continue
        try:
            addresses[label] = ipaddress.ip_address(str(value))
        except ValueError:
            found.append((label, f"{value!r} is not an IP address"))
            continue
        if addresses[label] not in network:
            found.append((label, f"{value} is outside the network {network}"))
    has_start, has_end = raw.get("dhcp_start") is not None, raw.get("dhcp_end") is not None
    if has_start != has_end:
        found.append(("dhcp_end" if has_start else "dhcp_start",
                      "give both dhcp_start and dhcp_end, or neither"))
    start, end = addresses.get("dhcp_start"), addresses.get("dhcp_end")
    if start is not None and end is not None and start.version == end.version and start > end:
        found.append(("dhcp_start", f"dhcp_start {start} is after dhcp_end {end}"))
    return found


def _validate_item(parsed: ParsedFleet, section: Section, item: Item) -> None:
    try:
        item.data = section.schema.model_validate(item.raw)
        return
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    address_errors = (
        network_address_errors(item.raw)
        if section.key == "networks" and isinstance(item.raw, dict) else []
    )
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if address_errors and not loc:
            continue  # the model check stops at the first address; ours reports them all
        parsed.error(join_path(item.path, loc), _message(error))
    for label, message in address_errors:
        parsed.error(f"{item.path}.{label}", message)


def parse(document: Any) -> ParsedFleet:
    """Validate every item of every section, collecting all errors, and find duplicates."""
    parsed = ParsedFleet()
    if not isinstance(document, dict):
        parsed.error("", "a fleet file is a mapping of sections (sites, racks, ... nodes)")
        return parsed
    for key, value in document.items():
        if key == "version":
            if value != SUPPORTED_VERSION or isinstance(value, bool):
                parsed.error("version", f"only version {SUPPORTED_VERSION} is supported")
            continue
        section = BY_KEY.get(key)
        if section is None:
            parsed.error(str(key), "unknown top-level key; the keys are version, "
                         + ", ".join(s.key for s in SECTIONS))
            continue
        parsed.present.add(key)
        if value is None:
            continue  # "nodes:" with nothing under it is an empty list
        if not isinstance(value, list):
            parsed.error(key, f"must be a list of {section.kind}s")
            continue
        for index, raw in enumerate(value):
            item = Item(key, index, raw)
            parsed.items[key].append(item)
            _validate_item(parsed, section, item)
    for section in SECTIONS:
        first: dict[str, Item] = {}
        for item in parsed.items[section.key]:
            if item.name is None:
                continue
            if item.name in first:
                parsed.error(f"{item.path}.name", f"duplicate {section.kind} name "
                             f"{item.name!r}; {first[item.name].path} has it already")
            else:
                first[item.name] = item
    return parsed


def load_file(path: str | Path) -> Any:
    """Read a fleet file from YAML (JSON is YAML too), for the CLI to send to the API."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)
