"""Linux bridge dialects: the VM lab's switch, and what Cumulus and SONiC run inside.

Two ways to separate networks on a Linux bridge, one class each:

* :class:`VlanFilteringBridge`: one bridge with ``vlan_filtering 1``; a port's network is its
  untagged PVID (``bridge vlan add dev PORT vid N pvid untagged``). What a real Linux-based
  switch does. Needs a kernel built with ``CONFIG_BRIDGE_VLAN_FILTERING``: the project's
  CI kernel (6.18, Firecracker) is not, and answers "Operation not supported"; the class says
  so in its error instead of failing later.
* :class:`BridgePerNetwork`: one plain bridge per VLAN (``mfv<VLAN>``), a port's network is
  its master bridge (``ip link set PORT master mfv101``). Works on any kernel with bridges,
  moves a port in one netlink call (the kernel detaches it from the old bridge as it attaches
  it to the new one), and isolates networks as completely: frames never cross bridges. The lab
  fabric uses it, and the isolation tests send real packets through it.

Both read the switch back as JSON (``ip -j``, ``bridge -j``) and run through any transport
(network/transport.py): a local namespace for the lab, SSH (netmiko) for a remote switch.
"""

from __future__ import annotations

import json
import re
from typing import Any

from metalfleet.network.switch import PortState, Segment, SwitchDriver, SwitchError, check_port_name
from metalfleet.network.transport import CommandFailed, Transport

BRIDGE_PREFIX = "mfv"  # mfv101: at most 7 characters, well inside IFNAMSIZ
_OUR_BRIDGE = re.compile(rf"^{BRIDGE_PREFIX}(\d{{1,4}})$")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "[]")
    except ValueError as exc:
        raise SwitchError(f"the switch answered {what} with something that is not JSON: "
                          f"{text[:200]!r}") from exc


class BridgePerNetwork(SwitchDriver):
    """A bridge per network; ``ports`` that are not node ports (uplinks) are never touched."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    @staticmethod
    def bridge_for(segment: Segment) -> str:
        return f"{BRIDGE_PREFIX}{segment.vlan}"

    def _ensure_bridge(self, bridge: str) -> None:
        try:
            self.transport.run(["ip", "-j", "link", "show", "dev", bridge])
        except CommandFailed:
            try:
                self.transport.run(["ip", "link", "add", "name", bridge, "type", "bridge"])
            except CommandFailed as exc:
                # another conductor thread moving another node's port made it just now
                if "file exists" not in exc.output.lower():
                    raise
        self.transport.run(["ip", "link", "set", "dev", bridge, "up"])

    def set_port(self, port: str, segment: Segment) -> None:
        check_port_name(port)
        bridge = self.bridge_for(segment)
        self._ensure_bridge(bridge)
        self.transport.run(["ip", "link", "set", "dev", port, "master", bridge])
        self.transport.run(["ip", "link", "set", "dev", port, "up"])

    def port_state(self, port: str) -> PortState:
        check_port_name(port)
        links = _json(self.transport.run(["ip", "-j", "link", "show", "dev", port]),
                      f"`ip -j link show dev {port}`")
        if not links:
            raise SwitchError(f"the switch has no port {port}")
        master = str(links[0].get("master") or "")
        match = _OUR_BRIDGE.match(master)
        return PortState(port, int(match.group(1)) if match else None)

    def detach(self, port: str) -> None:
        """Take the port off every network (the quarantine of last resort)."""
        self.transport.run(["ip", "link", "set", "dev", check_port_name(port), "nomaster"])


class VlanFilteringBridge(SwitchDriver):
    """One VLAN-aware bridge; a port carries exactly one VLAN, untagged, as its PVID."""

    def __init__(self, transport: Transport, bridge: str = "br0") -> None:
        self.transport = transport
        self.bridge = check_port_name(bridge)

    def close(self) -> None:
        self.transport.close()

    def _vlans(self, port: str) -> list[dict[str, Any]]:
        entries = _json(self.transport.run(["bridge", "-j", "vlan", "show", "dev", port]),
                        f"`bridge -j vlan show dev {port}`")
        for entry in entries:
            if entry.get("ifname") == port:
                return list(entry.get("vlans") or [])
        return []

    def set_port(self, port: str, segment: Segment) -> None:
        check_port_name(port)
        try:
            self.transport.run(["bridge", "vlan", "add", "dev", port, "vid", str(segment.vlan),
                                "pvid", "untagged"])
        except CommandFailed as exc:
            if "not supported" in exc.output.lower():
                raise SwitchError(
                    f"the switch's kernel has no VLAN filtering on bridges ({exc.output.strip()}"
                    "): use the bridge-per-network dialect, or a kernel with "
                    "CONFIG_BRIDGE_VLAN_FILTERING") from exc
            raise
        for entry in self._vlans(port):  # detach from the old networks only now
            vid = int(entry.get("vlan", 0))
            if vid and vid != segment.vlan:
                self.transport.run(["bridge", "vlan", "del", "dev", port, "vid", str(vid)])

    def port_state(self, port: str) -> PortState:
        check_port_name(port)
        for entry in self._vlans(port):
            if "PVID" in (entry.get("flags") or []):
                return PortState(port, int(entry["vlan"]))
        return PortState(port, None)
