"""BMC validation (connect, read the system, report what the BMC says of itself), sensors
and log entries."""

from __future__ import annotations

from typing import Any

from metalfleet.drivers.base import ManagementInterface, NodeContext
from metalfleet.drivers.redfish.client import RedfishClient, default_client
from metalfleet.drivers.redfish.power import power_state_of
from metalfleet.drivers.redfish.resources import sushy_fetch
from metalfleet.drivers.redfish.telemetry import read_log_entries, read_sensors


class RedfishManagement(ManagementInterface):
    def __init__(self, client: RedfishClient | None = None) -> None:
        self._client = client or default_client()

    def validate(self, node: NodeContext) -> dict[str, Any]:
        with self._client.system(node, "read the system") as system:
            return {
                "manufacturer": system.manufacturer,
                "model": system.model,
                "serial": system.serial_number,
                "bios_version": system.bios_version,
                "power_state": power_state_of(system),
                "uuid": system.uuid,
            }

    def sensors(self, node: NodeContext) -> list[dict[str, Any]]:
        with self._client.system(node, "read the sensors") as system:
            fetch = sushy_fetch(system._conn)
            return read_sensors(fetch, fetch(system.path))

    def log_entries(self, node: NodeContext) -> list[dict[str, Any]]:
        with self._client.system(node, "read the BMC logs") as system:
            fetch = sushy_fetch(system._conn)
            return read_log_entries(fetch, fetch(system.path))
