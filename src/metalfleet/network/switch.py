"""The switch driver interface: put a switch port on a network, read where a port is.

A node's tenant-facing ports move with its lifecycle (provisioning while metalfleet works on
it, its tenant's network while a tenant holds it, quarantine when it is suspect). A driver
knows one kind of switch; it is handed the port name as the switch calls it (``swp12``,
``Ethernet48``, a Linux tap) and a :class:`Segment`, and it must either leave the port on
that segment or raise :class:`SwitchError`: never half-way (a port on no network is safer
than a port on the wrong one, so drivers detach from the old segment last).

A driver is split in two, as networking-generic-switch does: a *dialect* renders the
commands of one network OS and reads its answers, a *transport* runs them (locally, in a
network namespace, or over SSH). See network/linux_bridge.py and network/transport.py.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass

from metalfleet.core.errors import DriverError

# What a port name may look like on any switch we speak to; everything else is refused
# before it reaches a command line (names come from the fleet model, which operators write).
_PORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,31}$")
VLAN_RANGE = range(1, 4095)


class SwitchError(DriverError):
    """A switch refused a change or could not be read; the message says which and why."""


@dataclass(frozen=True)
class Segment:
    """A layer-2 network as a switch sees it: its VLAN (and VXLAN VNI on EVPN fabrics)."""

    name: str
    vlan: int
    vni: int | None = None

    def __post_init__(self) -> None:
        if self.vlan not in VLAN_RANGE:
            raise SwitchError(f"network {self.name!r}: VLAN {self.vlan} is outside 1-4094")
        if self.vni is not None and not 1 <= self.vni < 2**24:
            raise SwitchError(f"network {self.name!r}: VNI {self.vni} is outside 1-16777215")


@dataclass(frozen=True)
class PortState:
    """Where a port is: the VLAN it carries untagged, None when it is on no network."""

    port: str
    vlan: int | None


def check_port_name(port: str) -> str:
    if not _PORT_NAME.match(port):
        raise SwitchError(f"switch port name {port!r} is not a port name (letters, digits and "
                          "_ . : / - only, at most 32 characters)")
    return port


class SwitchDriver(abc.ABC):
    """One switch. Methods block until the switch has applied the change."""

    @abc.abstractmethod
    def set_port(self, port: str, segment: Segment) -> None:
        """Make ``segment`` the only network on ``port`` (untagged/access)."""

    @abc.abstractmethod
    def port_state(self, port: str) -> PortState:
        """Read where ``port`` is now (for verification after a change and drift sweeps)."""

    def close(self) -> None:
        """Release the connection to the switch, if the driver holds one."""
        return None

    def move_port(self, port: str, segment: Segment) -> PortState:
        """Set, then read back: a switch that accepted a command it did not apply is caught
        here, not by a tenant reaching the provisioning network."""
        self.set_port(check_port_name(port), segment)
        state = self.port_state(port)
        if state.vlan != segment.vlan:
            raise SwitchError(f"port {port} should be on {segment.name} (VLAN {segment.vlan}) "
                              f"but the switch reports VLAN {state.vlan}")
        return state
