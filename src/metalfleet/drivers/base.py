"""Driver interfaces, one per concern, composed into hardware types (as Ironic does).

Drivers are synchronous: the conductor runs each task in a worker thread, so a driver may
block on a BMC or a disk. Drivers never touch the database or the API; they get a
:class:`NodeContext` snapshot and report progress through it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metalfleet.core.states import PowerState

ProgressFn = Callable[[int, str], None]


@dataclass(frozen=True)
class BmcCredentials:
    driver: str
    address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True


@dataclass(frozen=True)
class ImageRef:
    name: str
    url: str
    sha256: str | None
    size_bytes: int | None
    disk_format: str = "raw"


class AgentChannel(abc.ABC):
    """How in-band drivers talk to the agent booted on the node (conductor/agent_channel.py)."""

    @abc.abstractmethod
    def wait_for_agent(self, timeout: float) -> dict[str, Any]:
        """Block until the node's agent has booted and looked itself up; its inventory."""

    @abc.abstractmethod
    def run(self, name: str, args: dict[str, Any], *, timeout: float,
            progress: ProgressFn | None = None) -> dict[str, Any]:
        """Hand the agent a command and wait for its result (DriverError if it fails)."""


@dataclass
class NodeContext:
    """What a driver knows about the node it works on: a snapshot, not a DB row."""

    name: str
    uuid: str
    bmc: BmcCredentials
    driver_info: dict[str, Any] = field(default_factory=dict)
    inventory: dict[str, Any] = field(default_factory=dict)
    macs: list[str] = field(default_factory=list)
    image: ImageRef | None = None
    agent: AgentChannel | None = None
    progress: ProgressFn = field(default=lambda percent, step: None, repr=False)
    # Put the node's switch ports on the network of a role ("provisioning", "tenant");
    # the conductor sets it (network/port_moves.py). Raises DriverError if a switch refuses.
    move_ports: Callable[[str], None] = field(default=lambda role: None, repr=False)

    def report(self, percent: int, step: str) -> None:
        self.progress(max(0, min(100, percent)), step)


class PowerInterface(abc.ABC):
    @abc.abstractmethod
    def get_power_state(self, node: NodeContext) -> PowerState: ...

    @abc.abstractmethod
    def set_power_state(self, node: NodeContext, state: PowerState, *, soft: bool = False) -> None:
        """Ask the BMC for ``state``; returns once the BMC has accepted the request."""

    @abc.abstractmethod
    def reboot(self, node: NodeContext) -> None: ...


class BootInterface(abc.ABC):
    @abc.abstractmethod
    def set_boot_device(self, node: NodeContext, device: str, *, persistent: bool = False) -> None:
        """device: one of 'pxe', 'disk', 'http', 'cd'."""

    @abc.abstractmethod
    def get_boot_device(self, node: NodeContext) -> str | None: ...


class ManagementInterface(abc.ABC):
    @abc.abstractmethod
    def validate(self, node: NodeContext) -> dict[str, Any]:
        """Check that the BMC answers and the credentials work; return what it says of itself."""

    def sensors(self, node: NodeContext) -> list[dict[str, Any]]:
        """Readings as {kind, name, reading, unit, health, upper_critical}; [] if unsupported."""
        return []

    def log_entries(self, node: NodeContext) -> list[dict[str, Any]]:
        """BMC log entries (SEL and the like) as {log, id, time, severity, message, ...}."""
        return []


class InspectInterface(abc.ABC):
    @abc.abstractmethod
    def inspect(self, node: NodeContext) -> dict[str, Any]:
        """Collect the node's hardware inventory."""


class BurnInInterface(abc.ABC):
    @abc.abstractmethod
    def burn_in(self, node: NodeContext) -> dict[str, Any]:
        """Run acceptance tests; raise DriverError on a failed test. Returns the results."""


class DeployInterface(abc.ABC):
    @abc.abstractmethod
    def deploy(self, node: NodeContext) -> None:
        """Write node.image to the node's disk and boot it."""

    @abc.abstractmethod
    def tear_down(self, node: NodeContext) -> None:
        """Power the node off and undo deploy-time configuration (before cleaning)."""


class CleanInterface(abc.ABC):
    @abc.abstractmethod
    def clean(self, node: NodeContext) -> dict[str, Any]:
        """Wipe the node's disks and verify; returns what was done."""


@dataclass(frozen=True)
class HardwareType:
    """A named composition of interface implementations."""

    name: str
    power: PowerInterface
    boot: BootInterface
    management: ManagementInterface
    inspect: InspectInterface
    burn_in: BurnInInterface
    deploy: DeployInterface
    clean: CleanInterface
