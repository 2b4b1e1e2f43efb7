"""What the conductor does in each work state, composed from a hardware type's interfaces.

Each flow takes the node snapshot and the hardware type, reports progress, and returns the
node fields to store when it succeeds. Any DriverError fails the step with its message.
Burn-in is the one flow that also writes to the database (its AcceptanceRun), through
:func:`run_flow`, which the conductor calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from metalfleet.agent.acceptance import PLAN_KEY
from metalfleet.boot import nocloud_seeds
from metalfleet.core.errors import DriverError, MetalfleetError
from metalfleet.core.states import NodeState, PowerState
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.drivers.base import HardwareType, NodeContext
from metalfleet.health import acceptance
from metalfleet.inventory import agent_auth
from metalfleet.inventory.agents import AGENT_STATES
from metalfleet.network.segments import PROVISIONING, TENANT

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
    """Network-boot the node into the agent (a reboot if it is already on), always from the
    provisioning network: the ramdisk's traffic never reaches a tenant's."""
    ctx.move_ports(PROVISIONING)
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
    """Run the acceptance plan in the agent; a failed step fails the burn-in, naming it.
    The conductor calls it through :func:`run_flow`, which also stores the run."""
    return judged_burn_in(ctx, hw)[0]


def judged_burn_in(ctx: NodeContext, hw: HardwareType
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(node updates, step results); DriverError with ``extra["acceptance"]`` on a failure."""
    results = in_ramdisk(ctx, hw, "burn-in", "running acceptance tests",
                         lambda: hw.burn_in.burn_in(ctx))
    steps = step_results(results, hw)
    failed = acceptance.failed_steps(steps)
    if failed or results.get("passed") is False:
        raise DriverError(acceptance.failure_reason(failed) if failed
                          else "burn-in failed: the agent reported it failed", acceptance=steps)
    info = {k: v for k, v in ctx.driver_info.items() if k != PLAN_KEY}
    summary = {"passed": True, "seconds": results.get("seconds"), "steps": len(steps)}
    return ({"power_state": PowerState.OFF.value,
             "driver_info": {**info, "last_burn_in": summary}}, steps)


def step_results(results: dict[str, Any], hw: HardwareType) -> list[dict[str, Any]]:
    """The agent's per-step results; one summary step for a driver that has none (fake)."""
    steps = results.get("steps")
    if isinstance(steps, list):
        return [dict(step) for step in steps]
    return [{"step": "burn-in", "status": "pass" if results.get("passed", True) else "fail",
             "measured": None, "unit": None, "spec": None, "threshold": None,
             "detail": f"the {hw.name} burn-in interface reports no per-step results"}]


def recorded_burn_in(db: Database, node_id: str, ctx: NodeContext,
                     hw: HardwareType) -> dict[str, Any]:
    """Burn-in with its AcceptanceRun: plan from the node's class, one run stored per burn-in
    whatever the outcome, so a node becomes available only after a passed run."""
    with db.session() as session:
        node = session.get(m.Node, node_id)
        if node is None:
            raise DriverError(f"node {ctx.name} vanished before its burn-in")
        try:
            plan = acceptance.plan_for(node.node_class)
            problem = None
        except MetalfleetError as exc:
            plan, problem = {}, exc.detail
        run_id = acceptance.start_run(session, node, plan).id
    try:
        if problem is not None:
            raise DriverError(f"acceptance plan of the node's class: {problem}")
        ctx.driver_info[PLAN_KEY] = plan
        updates, steps = judged_burn_in(ctx, hw)
    except Exception as exc:
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        steps = list(getattr(exc, "extra", {}).get("acceptance") or [
            {"step": "burn-in", "status": "fail", "measured": None, "unit": None,
             "spec": None, "threshold": None, "detail": detail}])
        with db.session() as session:
            acceptance.finish_run(session, run_id, steps, passed=False)
        raise
    with db.session() as session:
        acceptance.finish_run(session, run_id, steps, passed=True)
    updates["driver_info"]["last_burn_in"]["acceptance_run"] = run_id
    return updates


def deploy(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    if ctx.image is None:
        raise DriverError("no image is set on the node; deploy again with an image")
    boot_ramdisk(ctx, hw, "deploy", 2)
    ctx.report(5, f"writing image {ctx.image.name}")
    hw.deploy.deploy(ctx)
    ctx.report(93, "moving the node's ports to its tenant network")
    ctx.move_ports(TENANT)  # before the OS boots: the tenant's first packet is on its own net
    ctx.report(95, "booting from disk")
    hw.boot.set_boot_device(ctx, "disk", persistent=True)
    hw.power.reboot(ctx)
    wait_power(ctx, hw, PowerState.ON)
    return {"power_state": PowerState.ON.value}


def release(ctx: NodeContext, hw: HardwareType) -> dict[str, Any]:
    ctx.report(10, "moving the node's ports back to the provisioning network")
    ctx.move_ports(PROVISIONING)  # a port still on the tenant's net stops the release here
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


def run_flow(db: Database, node_id: str, state: NodeState, ctx: NodeContext,
             hw: HardwareType) -> dict[str, Any]:
    """The flow of ``state``; burn-in also records its acceptance run in ``db``."""
    if state.value in AGENT_STATES:  # a new boot attempt: the next iPXE fetch gets its secret
        agent_auth.begin(db, node_id, state.value)
    if state is NodeState.BURNING_IN:
        return recorded_burn_in(db, node_id, ctx, hw)
    if state is NodeState.DEPLOYING:  # this deploy's NoCloud seed secret, to its boot path
        nocloud_seeds.hand_over(db, node_id)
    return FLOWS[state](ctx, hw)
