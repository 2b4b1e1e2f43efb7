"""The lab's Redfish BMC emulator: many emulated servers behind one real Redfish HTTP service.

The production ``redfish`` driver (sushy) talks to it unchanged::

    emulator = LabBmcEmulator(state_file=Path("lab/bmc.json"))
    system = emulator.add_system(LabSystem.new("gpu-01", gpus=8))
    server = start_bmc_server(emulator)          # 127.0.0.1, a free port
    address = server.system_address(system.id)   # http://127.0.0.1:PORT/redfish/v1/Systems/<id>

The pieces live in small modules: the state (:mod:`metalfleet.lab.bmc_model`), the Redfish
documents (:mod:`metalfleet.lab.redfish_payloads`), the HTTP app
(:mod:`metalfleet.lab.redfish_app`) and the uvicorn runner (:mod:`metalfleet.lab.bmc_server`).
"""

from __future__ import annotations

from metalfleet.lab.bmc_model import (
    BOOT_ENABLED,
    BOOT_MODES,
    BOOT_TARGETS,
    POWER_OFF,
    POWER_ON,
    RESET_TYPES,
    LabBmcEmulator,
    LabNic,
    LabSystem,
    PendingPower,
)
from metalfleet.lab.bmc_server import BmcServer, start_bmc_server
from metalfleet.lab.redfish_app import build_app

__all__ = [
    "BOOT_ENABLED",
    "BOOT_MODES",
    "BOOT_TARGETS",
    "POWER_OFF",
    "POWER_ON",
    "RESET_TYPES",
    "BmcServer",
    "LabBmcEmulator",
    "LabNic",
    "LabSystem",
    "PendingPower",
    "build_app",
    "start_bmc_server",
]
