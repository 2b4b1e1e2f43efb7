"""Checks that need the fleet file and the live fleet side by side.

References must name something in the file or in the fleet (and not something prune
deletes); a MAC belongs to one node; nodes fit their rack and do not overlap; a switch port
holds one cable; prune never deletes a busy node or something that stays still uses.
Each problem is added to the parsed file's errors with its path; none stops the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from metalfleet.core.states import DELETABLE_STATES, NodeState
from metalfleet.db import models as m
from metalfleet.inventory import schemas as s
from metalfleet.inventory.fleetfile_schema import KIND_OF, SECTIONS, Item, ParsedFleet

# References by name: section -> (field, the section it names).
REFS: dict[str, tuple[tuple[str, str], ...]] = {
    "racks": (("site", "sites"),),
    "switches": (("rack", "racks"),),
    "switch_links": (("switch", "switches"), ("peer_switch", "switches")),
    "networks": (("site", "sites"),),
    "nodes": (("rack", "racks"), ("node_class", "node_classes"), ("tenant", "tenants")),
}
PORT_REFS = (("network", "networks"), ("switch", "switches"))


def label(section: str) -> str:
    return KIND_OF[section].replace("_", " ")


@dataclass
class _Slot:
    node: str
    start: int
    size: int
    path: str | None  # where the file places it; None for a fleet node the file leaves alone

    @property
    def top(self) -> int:
        return self.start + self.size - 1


def _file_refs(section: str, data: Any) -> Iterator[tuple[str, str, str]]:
    """(path below the item, section named, name) for each reference an item makes."""
    for field, target in REFS.get(section, ()):
        if getattr(data, field) is not None:
            yield field, target, getattr(data, field)
    if section == "nodes":
        for index, port in enumerate(data.ports):
            for field, target in PORT_REFS:
                if getattr(port, field) is not None:
                    yield f"ports[{index}].{field}", target, getattr(port, field)


def _fleet_refs(section: str, obj: Any) -> Iterator[tuple[str, str, str]]:
    for field, target in REFS.get(section, ()):
        if getattr(obj, field) is not None:
            yield field, target, getattr(obj, field).name
    if section == "nodes":
        if obj.image is not None:
            yield "image", "images", obj.image.name
        for port in obj.ports:
            for field, target in PORT_REFS:
                if getattr(port, field) is not None:
                    yield field, target, getattr(port, field).name


def _macs(item: Item) -> Iterator[tuple[int, str]]:
    """(index, MAC) of a node's ports; from the raw file when the item has schema errors."""
    if item.data is not None:
        yield from ((index, port.mac) for index, port in enumerate(item.data.ports))
        return
    ports = item.raw.get("ports") if isinstance(item.raw, dict) else None
    for index, port in enumerate(ports if isinstance(ports, list) else []):
        mac = port.get("mac") if isinstance(port, dict) else None
        if isinstance(mac, str) and s.MAC_RE.match(normal := mac.strip().lower().replace("-", ":")):
            yield index, normal


class FleetView:
    """The parsed file, the fleet (section -> name -> object) and what prune would delete."""

    def __init__(self, parsed: ParsedFleet, fleet: dict[str, dict[str, Any]],
                 prune: bool) -> None:
        self.parsed = parsed
        self.fleet = fleet
        self.names = {section.key: parsed.names(section.key) for section in SECTIONS}
        self.deleted: set[tuple[str, str]] = set()
        if prune:
            self.deleted = {(key, name) for key in parsed.present
                            for name in fleet[key] if name not in self.names[key]}

    def error(self, path: str, message: str) -> None:
        self.parsed.error(path, message)

    def check(self) -> None:
        """Add every error that needs the file and the fleet together."""
        for section in SECTIONS:
            for item in self.parsed.valid(section.key):
                self._check_refs(item)
        for key, name in sorted(self.deleted):
            self._check_node_deletable(key, name)
        self._check_referrers()
        self._check_macs()
        self._check_rack_space()
        self._check_links()

    def _check_refs(self, item: Item) -> None:
        for where, target, name in _file_refs(item.section, item.data):
            what = f"{label(target)} {name!r}"
            if name in self.names[target]:
                continue
            if (target, name) in self.deleted:
                self.error(f"{item.path}.{where}",
                           f"{what} is not in the file, and prune would delete it from the fleet")
            elif name not in self.fleet[target]:
                self.error(f"{item.path}.{where}",
                           f"{what} is neither in the file nor in the fleet")

    def _check_node_deletable(self, section: str, name: str) -> None:
        if section != "nodes":
            return
        node: m.Node = self.fleet["nodes"][name]
        if NodeState(node.state) not in DELETABLE_STATES:
            allowed = ", ".join(sorted(st.value for st in DELETABLE_STATES))
            self.error("nodes", f"node {name!r} is {node.state}; prune deletes only nodes that "
                       f"are {allowed}: undeploy it first, or keep it in the file")
        elif node.reservation is not None:
            self.error("nodes", f"node {name!r} is being worked on by {node.reservation}; "
                       "prune again when its current step ends")

    def _check_referrers(self) -> None:
        """Nothing that stays may refer to something prune deletes."""
        for section in SECTIONS:
            for name, obj in self.fleet[section.key].items():
                if (section.key, name) in self.deleted:
                    continue
                in_file = name in self.names[section.key]
                for field, target, target_name in _fleet_refs(section.key, obj):
                    if (target, target_name) not in self.deleted or (in_file and field != "image"):
                        continue  # the file's own references are checked item by item
                    unlisted = "" if in_file else ", which the file does not list"
                    self.error(target, f"{label(target)} {target_name!r} is used by "
                               f"{label(section.key)} {name!r}{unlisted}; prune cannot delete it")

    def kept_fleet(self, section: str) -> Iterator[tuple[str, Any]]:
        """Fleet objects the file does not list and apply keeps."""
        for name, obj in self.fleet[section].items():
            if name not in self.names[section] and (section, name) not in self.deleted:
                yield name, obj

    def _check_macs(self) -> None:
        owners: dict[str, tuple[str, str | None]] = {}
        for item in self.parsed.items["nodes"]:
            for index, mac in _macs(item):
                path = f"{item.path}.ports[{index}].mac"
                if mac in owners:
                    other_path, other = owners[mac]
                    self.error(path, f"MAC {mac} is also on {other_path} (node {other!r}); "
                               "a MAC belongs to one node only")
                else:
                    owners[mac] = (path, item.name)
        for name, node in self.kept_fleet("nodes"):
            for port in node.ports:
                if port.mac in owners:
                    self.error(owners[port.mac][0], f"MAC {port.mac} is a port of node {name!r} "
                               "in the fleet, which the file does not list; a MAC belongs to one "
                               f"node only: fix the address or remove the port from {name!r}")

    def _check_rack_space(self) -> None:
        heights: dict[str, tuple[int, str | None]] = {
            name: (rack.u_height, None) for name, rack in self.kept_fleet("racks")}
        for item in self.parsed.valid("racks"):
            heights[item.data.name] = (item.data.u_height, f"{item.path}.u_height")
        slots: dict[str, list[_Slot]] = {}
        for item in self.parsed.valid("nodes"):
            data = item.data
            if data.rack is not None and data.u_position is not None:
                slots.setdefault(data.rack, []).append(
                    _Slot(data.name, data.u_position, data.u_size, f"{item.path}.u_position"))
        for name, node in self.kept_fleet("nodes"):
            if node.rack is not None and node.u_position is not None:
                slots.setdefault(node.rack.name, []).append(
                    _Slot(name, node.u_position, node.u_size, None))
        for rack, placed in slots.items():
            if rack in heights:
                self._check_one_rack(rack, *heights[rack], placed)

    def _check_one_rack(self, rack: str, height: int, rack_path: str | None,
                        placed: list[_Slot]) -> None:
        placed.sort(key=lambda slot: (slot.start, slot.path is not None))
        for slot in placed:
            if slot.top <= height:
                continue
            if slot.path is not None:
                self.error(slot.path, f"U{slot.start}-U{slot.top} does not fit rack {rack!r} "
                           f"({height}U); pick a lower u_position")
            elif rack_path is not None:
                self.error(rack_path, f"rack {rack!r} would be {height}U, but node "
                           f"{slot.node!r} (in the fleet, not in the file) is at "
                           f"U{slot.start}-U{slot.top}")
        for index, low in enumerate(placed):
            for high in placed[index + 1:]:
                if high.start > low.top:
                    break
                culprit, other = (high, low) if high.path is not None else (low, high)
                if culprit.path is None:
                    continue  # two fleet nodes the file leaves alone: not this file's doing
                where = "" if other.path else " (in the fleet, not in the file)"
                self.error(culprit.path, f"U{culprit.start}-U{culprit.top} of rack {rack!r} "
                           f"overlaps node {other.node!r}{where} at U{other.start}-U{other.top}")

    def _check_links(self) -> None:
        ends: dict[tuple[str, str], str] = {}
        for name, link in self.kept_fleet("switch_links"):
            for end in ((link.switch.name, link.port), (link.peer_switch.name, link.peer_port)):
                ends.setdefault(end, f"switch link {name!r} (in the fleet, not in the file)")
        for item in self.parsed.valid("switch_links"):
            data = item.data
            for field, end in (("port", (data.switch, data.port)),
                               ("peer_port", (data.peer_switch, data.peer_port))):
                if end in ends:
                    self.error(f"{item.path}.{field}", f"port {end[1]} of switch {end[0]!r} is "
                               f"already cabled by {ends[end]}")
                else:
                    ends[end] = item.path
