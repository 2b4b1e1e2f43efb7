"""Redfish BMCs whose systems are QEMU VMs: the lab BMC emulator with real power.

Power on starts the VM (booting the network or its disk as the boot override says), power
off kills it, a restart does both; a VM that powers itself off reads as Off. The Redfish
service is the lab's own (lab/redfish_app.py), so the production redfish driver drives it.
"""

from __future__ import annotations

from metalfleet.lab.bmc_model import POWER_OFF, POWER_ON, LabBmcEmulator, LabSystem
from metalfleet.lab.vm.machines import Machines


class VmBmcEmulator(LabBmcEmulator):
    def __init__(self, machines: Machines, **kwargs: object) -> None:
        self.machines = machines
        super().__init__(power_delay=0.0, **kwargs)  # type: ignore[arg-type]

    def reset(self, system_id: str, reset_type: str) -> None:
        with self._lock:
            super().reset(system_id, reset_type)
            system = self._require(system_id)
            if self._settle(system):
                self._save()

    def _settle(self, system: LabSystem) -> bool:
        pending = system.pending
        changed = super()._settle(system)
        if changed and pending is not None:
            if pending.target == POWER_ON:
                self.machines.start(system.id, system.last_boot_target or "Hdd")
            else:
                self.machines.stop(system.id)
        elif (system.power_state == POWER_ON and system.pending is None
              and not self.machines.running(system.id)):
            system.power_state = POWER_OFF  # the guest powered itself off
            changed = True
        return changed
