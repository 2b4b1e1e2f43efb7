"""The ``none`` hardware type: a node discovered on the network whose BMC nobody has set yet.

Every out-of-band call fails with the same instruction, so verify, a power request or the
power-sync sweep all say what to do. Setting the BMC (PATCH /v1/nodes/NAME with ``bmc``)
switches the node to that BMC's hardware type.
"""

from __future__ import annotations

from typing import Any, NoReturn

from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.drivers import base


def _no_bmc(node: base.NodeContext) -> NoReturn:
    raise DriverError(
        f"node {node.name!r} has no BMC (it was discovered on the network); set the BMC "
        f"address and credentials: PATCH /v1/nodes/{node.name} with "
        '{"bmc": {"driver": "redfish", "address": ..., "username": ..., "password": ...}}',
        kind="invalid_config",
    )


class NoPower(base.PowerInterface):
    def get_power_state(self, node: base.NodeContext) -> PowerState:
        _no_bmc(node)

    def set_power_state(self, node: base.NodeContext, state: PowerState, *,
                        soft: bool = False) -> None:
        _no_bmc(node)

    def reboot(self, node: base.NodeContext) -> None:
        _no_bmc(node)


class NoBoot(base.BootInterface):
    def set_boot_device(self, node: base.NodeContext, device: str, *,
                        persistent: bool = False) -> None:
        _no_bmc(node)

    def get_boot_device(self, node: base.NodeContext) -> str | None:
        _no_bmc(node)


class NoManagement(base.ManagementInterface):
    def validate(self, node: base.NodeContext) -> dict[str, Any]:
        _no_bmc(node)


class NoWork(base.InspectInterface, base.BurnInInterface, base.DeployInterface,
             base.CleanInterface):
    """In-band steps need the node booted, which needs a BMC."""

    def inspect(self, node: base.NodeContext) -> dict[str, Any]:
        _no_bmc(node)

    def burn_in(self, node: base.NodeContext) -> dict[str, Any]:
        _no_bmc(node)

    def deploy(self, node: base.NodeContext) -> None:
        _no_bmc(node)

    def tear_down(self, node: base.NodeContext) -> None:
        _no_bmc(node)

    def clean(self, node: base.NodeContext) -> dict[str, Any]:
        _no_bmc(node)


def hardware_type() -> base.HardwareType:
    work = NoWork()
    return base.HardwareType(name="none", power=NoPower(), boot=NoBoot(),
                             management=NoManagement(), inspect=work, burn_in=work,
                             deploy=work, clean=work)
