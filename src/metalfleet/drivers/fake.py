"""The `fake` hardware type: no hardware at all, instant answers.

For unit tests and benchmarks of the control plane only; every capability is also proven
against real peers (sushy-tools, the lab's Redfish emulator, QEMU). ``driver_info`` may ask
it to fail a step: {"fail": "deploy"} fails deploy with a DriverError, {"delay_s": 0.2}
slows each step down.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.drivers import base

_power: dict[str, PowerState] = {}
_boot: dict[str, str] = {}
_lock = threading.Lock()


def _step(node: base.NodeContext, name: str) -> None:
    delay = float(node.driver_info.get("delay_s", 0))
    if delay:
        time.sleep(delay)
    if node.driver_info.get("fail") == name:
        raise DriverError(f"fake driver told to fail {name}")


class FakePower(base.PowerInterface):
    def get_power_state(self, node: base.NodeContext) -> PowerState:
        with _lock:
            return _power.get(node.uuid, PowerState.OFF)

    def set_power_state(self, node: base.NodeContext, state: PowerState, *,
                        soft: bool = False) -> None:
        _step(node, "power")
        with _lock:
            _power[node.uuid] = state

    def reboot(self, node: base.NodeContext) -> None:
        self.set_power_state(node, PowerState.ON)


class FakeBoot(base.BootInterface):
    def set_boot_device(self, node: base.NodeContext, device: str, *,
                        persistent: bool = False) -> None:
        with _lock:
            _boot[node.uuid] = device

    def get_boot_device(self, node: base.NodeContext) -> str | None:
        with _lock:
            return _boot.get(node.uuid)


class FakeManagement(base.ManagementInterface):
    def validate(self, node: base.NodeContext) -> dict[str, Any]:
        _step(node, "verify")
        return {"manufacturer": "fake", "model": "fake"}


class FakeInspect(base.InspectInterface):
    def inspect(self, node: base.NodeContext) -> dict[str, Any]:
        _step(node, "inspect")
        return {"cpu": {"sockets": 2, "cores": 64, "threads": 128},
                "memory": {"total_mib": 1048576}, "gpus": [], "disks": [],
                "nics": [{"name": f"eth{i}", "mac": mac} for i, mac in enumerate(node.macs)]}


class FakeBurnIn(base.BurnInInterface):
    def burn_in(self, node: base.NodeContext) -> dict[str, Any]:
        _step(node, "burn-in")
        return {"passed": True}


class FakeDeploy(base.DeployInterface):
    def deploy(self, node: base.NodeContext) -> None:
        _step(node, "deploy")
        node.report(50, "writing image (fake)")

    def tear_down(self, node: base.NodeContext) -> None:
        _step(node, "tear-down")


class FakeClean(base.CleanInterface):
    def clean(self, node: base.NodeContext) -> dict[str, Any]:
        _step(node, "clean")
        return {"mode": "fake"}


def hardware_type() -> base.HardwareType:
    return base.HardwareType(
        name="fake", power=FakePower(), boot=FakeBoot(), management=FakeManagement(),
        inspect=FakeInspect(), burn_in=FakeBurnIn(), deploy=FakeDeploy(), clean=FakeClean(),
    )
