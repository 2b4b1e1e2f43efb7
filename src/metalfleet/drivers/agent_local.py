"""In-process agent driver: the lab's inspect, burn-in, deploy and clean.

Runs the node agent's library (:mod:`metalfleet.agent`) in the conductor's process against
a synthetic hardware root, so inventory parsing, wipe and image write are the real code
paths. ``driver_info`` keys:

* ``hardware_root`` (required): path of the node's root (see ``lab.synthetic_hardware``);
* ``disk``: the root disk relative to that root, default ``dev/nvme0n1``;
* ``clean_mode``: ``metadata`` (default) or ``full``;
* ``burn_in_seconds``: CPU + memory time of the burn-in, default the plan's or 2;
* ``acceptance_plan``: the class's acceptance plan, set by the conductor for the burn-in;
* ``verify_readback``: re-read the written image from the disk after deploy, default true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metalfleet.agent.acceptance import PLAN_KEY, run_acceptance
from metalfleet.agent.disk import wipe, write_image
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory
from metalfleet.core.errors import DriverError
from metalfleet.drivers.base import (
    BurnInInterface,
    CleanInterface,
    DeployInterface,
    InspectInterface,
    NodeContext,
)

DEFAULT_DISK = "dev/nvme0n1"
CLEAN_MODES = ("metadata", "full")


def _within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


class Confined:
    """The agent-local interfaces read and write only below ``allowed`` (the lab's folder):
    a node row that names any other path fails its step instead of touching the host."""

    def __init__(self, allowed: Path) -> None:
        self.allowed = allowed

    def hardware_root(self, node: NodeContext) -> HardwareRoot:
        path = node.driver_info.get("hardware_root")
        if not path:
            raise DriverError(
                f"node {node.name}: driver_info.hardware_root is required by the agent-local "
                "driver (the node's synthetic hardware root)"
            )
        if not _within(Path(path), self.allowed):
            raise DriverError(f"node {node.name}: hardware root {path} is outside the lab's "
                              f"folder {self.allowed}; refusing to touch it")
        if not Path(path).is_dir():
            raise DriverError(f"node {node.name}: hardware root {path} does not exist")
        return HardwareRoot(path)

    def root_disk(self, node: NodeContext) -> tuple[HardwareRoot, Path]:
        root = self.hardware_root(node)
        disk = root.resolve(str(node.driver_info.get("disk", DEFAULT_DISK)))
        if not _within(disk, root.path):
            raise DriverError(f"node {node.name}: disk {disk} is outside its hardware root")
        if not disk.exists():
            raise DriverError(
                f"node {node.name}: disk {disk} does not exist in the hardware root")
        return root, disk


class AgentLocalInspect(Confined, InspectInterface):
    def inspect(self, node: NodeContext) -> dict[str, Any]:
        root = self.hardware_root(node)
        node.report(10, "collecting hardware inventory")
        inventory = collect_inventory(root)
        node.report(100, "inventory collected")
        return inventory


class AgentLocalBurnIn(Confined, BurnInInterface):
    def burn_in(self, node: NodeContext) -> dict[str, Any]:
        root, disk = self.root_disk(node)
        plan = node.driver_info.get(PLAN_KEY)
        seconds = burn_in_seconds(node, plan, 2.0)
        return run_acceptance(root, disk, plan, seconds, progress=node.report)


def burn_in_seconds(node: NodeContext, plan: dict[str, Any] | None, default: float) -> float:
    """The node's own setting, else the class's (``extra.acceptance.seconds``), else default."""
    return float(node.driver_info.get("burn_in_seconds", (plan or {}).get("seconds", default)))


class AgentLocalDeploy(Confined, DeployInterface):
    def deploy(self, node: NodeContext) -> None:
        image = node.image
        if image is None:
            raise DriverError(f"node {node.name}: no image to deploy; choose an image first")
        if not image.sha256:
            raise DriverError(
                f"image {image.name} has no sha256; register it with a checksum so the "
                "deploy can be verified"
            )
        _, disk = self.root_disk(node)
        write_image(
            image.url, disk, image.sha256, image.size_bytes, node.report,
            disk_format=image.disk_format,
            readback=bool(node.driver_info.get("verify_readback", True)),
        )  # fmt: skip

    def tear_down(self, node: NodeContext) -> None:
        """Nothing to undo in-band: power and boot devices belong to the other interfaces."""


class AgentLocalClean(Confined, CleanInterface):
    def clean(self, node: NodeContext) -> dict[str, Any]:
        _, disk = self.root_disk(node)
        mode = node.driver_info.get("clean_mode", "metadata")
        if mode not in CLEAN_MODES:
            raise DriverError(
                f"node {node.name}: clean_mode {mode!r} is not one of {', '.join(CLEAN_MODES)}"
            )
        return wipe(disk, mode, node.report)
