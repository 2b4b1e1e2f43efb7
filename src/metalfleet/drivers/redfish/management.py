"""BMC validation: connect, read the system, report what the BMC says of itself."""

from __future__ import annotations

from typing import Any

from metalfleet.drivers.base import ManagementInterface, NodeContext
from metalfleet.drivers.redfish.client import RedfishClient, default_client
from metalfleet.drivers.redfish.power import power_state_of


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
