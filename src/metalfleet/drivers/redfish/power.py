"""Power control through the Redfish ComputerSystem.Reset action."""

from __future__ import annotations

from typing import Any

import sushy

from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.drivers.base import NodeContext, PowerInterface
from metalfleet.drivers.redfish.client import RedfishClient, default_client

# Transitional states count as the state being entered, as Ironic does.
_POWER_STATES = {
    sushy.PowerState.ON: PowerState.ON,
    sushy.PowerState.POWERING_ON: PowerState.ON,
    sushy.PowerState.OFF: PowerState.OFF,
    sushy.PowerState.POWERING_OFF: PowerState.OFF,
}


def power_state_of(system: Any) -> PowerState:
    return _POWER_STATES.get(system.power_state, PowerState.UNKNOWN)


def reset(system: Any, reset_type: sushy.ResetType) -> None:
    """Send a reset, with a clear error when this BMC does not offer that reset type."""
    allowed = system.get_allowed_reset_system_values()
    if reset_type not in allowed:
        offered = ", ".join(sorted(value.value for value in allowed)) or "none"
        raise DriverError(f"The BMC does not support the reset type {reset_type.value} "
                          f"(it offers: {offered}).", kind="unsupported")
    system.reset_system(reset_type)


class RedfishPower(PowerInterface):
    def __init__(self, client: RedfishClient | None = None) -> None:
        self._client = client or default_client()

    def get_power_state(self, node: NodeContext) -> PowerState:
        with self._client.system(node, "read the power state") as system:
            return power_state_of(system)

    def set_power_state(self, node: NodeContext, state: PowerState, *, soft: bool = False) -> None:
        if state == PowerState.ON:
            reset_type, action = sushy.ResetType.ON, "power on"
        elif state == PowerState.OFF:
            reset_type = sushy.ResetType.GRACEFUL_SHUTDOWN if soft else sushy.ResetType.FORCE_OFF
            action = "shut down" if soft else "power off"
        else:
            raise DriverError(f"Cannot set power state {state.value!r}: use on or off.",
                              kind="invalid_request")
        with self._client.system(node, action) as system:
            if power_state_of(system) == state:
                return  # some BMCs reject a reset that changes nothing
            reset(system, reset_type)

    def reboot(self, node: NodeContext) -> None:
        with self._client.system(node, "reboot") as system:
            if power_state_of(system) == PowerState.OFF:
                reset(system, sushy.ResetType.ON)
            else:
                reset(system, sushy.ResetType.FORCE_RESTART)
