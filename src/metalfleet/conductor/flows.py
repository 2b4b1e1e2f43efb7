"""What the conductor does in each work state, composed from a hardware type's interfaces.

Each flow takes the node snapshot and the hardware type, reports progress, and returns the
node fields to store when it succeeds. Any DriverError fails the step with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.core.states import NodeState, PowerState
from metalfleet.drivers.base import HardwareType, NodeContext

Flow = Callable[[NodeContext, HardwareType], dict[str, Any]]

POWER_TIMEOUT_S = 120.0


def wait_power(ctx: NodeContext, hw: HardwareType, want: PowerState,
               timeout: float = POWER_TIMEOUT_S) -> None:
    """BMCs apply power changes asynchronously: poll until the state is reached."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        if hw.power.get_power_state(ctx) is want:
            return
        if time.monotonic() > deadline:
            raise DriverError(
                f"the BMC did not reach power {want.value} within {timeout:.0f} s; "
                "check the BMC and the server's power supply"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def power_to(ctx: NodeContext, hw: HardwareType, want: PowerState) -> None:
    if hw.power.get_power_state(ctx) is not want:
        hw.power.set_power_state(ctx, want)
        wait_power(ctx, hw, want)


def boot_ramdisk(ctx: NodeContext, hw: HardwareType, step: str, percent: int) -> None:
    """Network-boot the node into the agent (a reboot if it is already on)."""
    ctx.report(percent, f"{step}: booting the deploy ramdisk")
    hw.boot.set_boot_device(ctx, "pxe")
    if hw.power.get_power_state(ctx) is PowerState.ON:
        hw.power.reboot(ctx)
    else:
        hw.power.set_power_state(ctx, PowerState.ON)
    wait_power(ctx, hw, PowerState.ON)


def verify(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    ctx.report(10, "checking BMC credentials")
    facts = hw.management.validate(ctx)
    ctx.report(70, "reading power state")
    power = hw.power.get_power_state(ctx)
    return {"power_state": power.value, "bmc_error": None,
            "driver_info": {**ctx.driver_info, "bmc_facts": facts}}


def in_ramdisk(ctx: NodeContext, hw: HardwareType, step: str, doing: str,
               work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Boot the agent, do ``work`` in it, power off: how inspect, burn-in and clean run."""
    boot_ramdisk(ctx, hw, step, 5)
    ctx.report(20, doing)
    result = work()
    ctx.report(90, "powering off")
    power_to(ctx, hw, PowerState.OFF)
    return result


def inspect(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    inventory = in_ramdisk(ctx, hw, "inspect", "collecting hardware inventory",
                           lambda: hw.inspect.inspect(ctx))
    return {"inventory": inventory, "power_state": PowerState.OFF.value}


def burn_in(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    results = in_ramdisk(ctx, hw, "burn-in", "running acceptance tests",
                         lambda: hw.burn_in.burn_in(ctx))
    return {"power_state": PowerState.OFF.value,
            "driver_info": {**ctx.driver_info, "last_burn_in": results}}


def deploy(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    if ctx.image is None:
        raise DriverError("no image is set on the node; deploy again with an image")
    boot_ramdisk(ctx, hw, "deploy", 2)
    ctx.report(5, f"writing image {ctx.image.name}")
    hw.deploy.deploy(ctx)
    ctx.report(95, "booting from disk")
    hw.boot.set_boot_device(ctx, "disk", persistent=True)
    hw.power.reboot(ctx)
    wait_power(ctx, hw, PowerState.ON)
    return {"power_state": PowerState.ON.value}


def release(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    ctx.report(20, "tearing down the deployment")
    hw.deploy.tear_down(ctx)
    ctx.report(60, "powering off")
    power_to(ctx, hw, PowerState.OFF)
    return {"power_state": PowerState.OFF.value}


def clean(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    result = in_ramdisk(ctx, hw, "clean", "wiping disks", lambda: hw.clean.clean(ctx))
    return {"power_state": PowerState.OFF.value,
            "driver_info": {**ctx.driver_info, "last_clean": result}}


FLOWS: dict[NodeState, Flow] = {
    NodeState.VERIFYING: verify,
    NodeState.INSPECTING: inspect,
    NodeState.BURNING_IN: burn_in,
    NodeState.DEPLOYING: deploy,
    NodeState.RELEASING: release,
    NodeState.CLEANING: clean,
}
