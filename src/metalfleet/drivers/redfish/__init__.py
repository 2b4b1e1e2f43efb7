"""The ``redfish`` hardware: power, boot and management over DMTF Redfish (via sushy)."""

from __future__ import annotations

from metalfleet.drivers.redfish.boot import BOOT_DEVICES, RedfishBoot
from metalfleet.drivers.redfish.client import (
    BmcAddress,
    BmcErrorKind,
    RedfishClient,
    classify_bmc_error,
    default_client,
    parse_bmc_address,
)
from metalfleet.drivers.redfish.management import RedfishManagement
from metalfleet.drivers.redfish.power import RedfishPower

__all__ = [
    "BOOT_DEVICES",
    "BmcAddress",
    "BmcErrorKind",
    "RedfishBoot",
    "RedfishClient",
    "RedfishManagement",
    "RedfishPower",
    "classify_bmc_error",
    "default_client",
    "parse_bmc_address",
]
