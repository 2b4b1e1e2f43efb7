"""In-band interfaces through the network-booted agent (the ramdisk's metalfleet-agent).

They wait for the agent to look up, then hand it commands over the agent channel; the
agent runs the same code the lab runs in-process (agent/disk.py, inventory.py, burnin.py).
"""

from __future__ import annotations

from typing import Any

from metalfleet.agent.acceptance import PLAN_KEY
from metalfleet.core.errors import DriverError
from metalfleet.drivers.agent_local import burn_in_seconds
from metalfleet.drivers.base import (
    AgentChannel,
    BurnInInterface,
    CleanInterface,
    DeployInterface,
    InspectInterface,
    NodeContext,
)

BOOT_TIMEOUT_S = 600.0
WRITE_TIMEOUT_S = 7200.0


def _channel(node: NodeContext) -> AgentChannel:
    if node.agent is None:
        raise DriverError("no agent channel: this conductor cannot talk to node agents")
    return node.agent


def _booted(node: NodeContext) -> AgentChannel:
    channel = _channel(node)
    channel.wait_for_agent(float(node.driver_info.get("agent_boot_timeout_s", BOOT_TIMEOUT_S)))
    return channel


def _device(node: NodeContext) -> dict[str, Any]:
    device = node.driver_info.get("root_device")
    return {"device": device} if device else {}


def _relay(node: NodeContext, low: int, high: int) -> Any:
    """Map the agent's 0-100 % onto this step's share of the node's progress."""
    return lambda percent, step: node.report(low + (high - low) * percent // 100, step)


class AgentRemoteInspect(InspectInterface):
    def inspect(self, node: NodeContext) -> dict[str, Any]:
        timeout = float(node.driver_info.get("agent_boot_timeout_s", BOOT_TIMEOUT_S))
        return _channel(node).wait_for_agent(timeout)


class AgentRemoteBurnIn(BurnInInterface):
    def burn_in(self, node: NodeContext) -> dict[str, Any]:
        plan = node.driver_info.get(PLAN_KEY)
        seconds = burn_in_seconds(node, plan, 10.0)
        # An agent that predates plans ignores "plan" and runs CPU, memory and disk.
        args = {**_device(node), "seconds": seconds, **({"plan": plan} if plan else {})}
        return _booted(node).run("burn_in", args, timeout=seconds * 10 + 300,
                                 progress=_relay(node, 20, 90))


class AgentRemoteDeploy(DeployInterface):
    def deploy(self, node: NodeContext) -> None:
        image = node.image
        if image is None:
            raise DriverError("no image to deploy")
        _booted(node).run(
            "write_image",
            {**_device(node), "url": image.url, "sha256": image.sha256,
             "size_bytes": image.size_bytes, "disk_format": image.disk_format},
            timeout=WRITE_TIMEOUT_S, progress=_relay(node, 5, 95),
        )

    def tear_down(self, node: NodeContext) -> None:
        """Nothing runs in-band on a deployed node; cleaning boots the agent again."""


class AgentRemoteClean(CleanInterface):
    def clean(self, node: NodeContext) -> dict[str, Any]:
        mode = str(node.driver_info.get("clean_mode", "metadata"))
        return _booted(node).run("wipe", {**_device(node), "mode": mode},
                                 timeout=WRITE_TIMEOUT_S, progress=_relay(node, 20, 90))


class ChooseInspect(InspectInterface):
    """Out-of-band inspection by default; in-band through the agent where the node asks for
    it with driver_info {"inspect_interface": "agent"} (disk sizes, PCI, IB ports, links)."""

    def __init__(self, out_of_band: InspectInterface) -> None:
        self.out_of_band = out_of_band
        self.in_band = AgentRemoteInspect()

    def inspect(self, node: NodeContext) -> dict[str, Any]:
        if node.driver_info.get("inspect_interface") == "agent":
            return self.in_band.inspect(node)
        return self.out_of_band.inspect(node)
