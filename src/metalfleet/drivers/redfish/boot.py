"""Boot device selection through the Redfish Boot source override."""

from __future__ import annotations

import sushy

from metalfleet.core.errors import DriverError
from metalfleet.drivers.base import BootInterface, NodeContext
from metalfleet.drivers.redfish.client import RedfishClient, default_client

BOOT_DEVICES: dict[str, sushy.BootSource] = {
    "pxe": sushy.BootSource.PXE,
    "disk": sushy.BootSource.HDD,
    "http": sushy.BootSource.UEFI_HTTP,
    "cd": sushy.BootSource.CD,
}
_DEVICE_OF = {source: device for device, source in BOOT_DEVICES.items()}
BOOT_MODES: dict[str, sushy.BootSourceOverrideMode] = {
    "uefi": sushy.BootSourceOverrideMode.UEFI,
    "bios": sushy.BootSourceOverrideMode.LEGACY,
    "legacy": sushy.BootSourceOverrideMode.LEGACY,
}


def boot_mode(node: NodeContext) -> sushy.BootSourceOverrideMode | None:
    """The firmware mode the node boots in, from driver_info.boot_mode (uefi or bios)."""
    wanted = node.driver_info.get("boot_mode")
    if wanted is None:
        return None  # leave the BMC's mode as it is
    mode = BOOT_MODES.get(str(wanted).lower())
    if mode is None:
        raise DriverError(f"driver_info.boot_mode {wanted!r} is not uefi or bios.",
                          kind="invalid_request")
    return mode


class RedfishBoot(BootInterface):
    def __init__(self, client: RedfishClient | None = None) -> None:
        self._client = client or default_client()

    def set_boot_device(self, node: NodeContext, device: str, *, persistent: bool = False) -> None:
        source = BOOT_DEVICES.get(device)
        if source is None:
            raise DriverError(f"Unknown boot device {device!r}: use one of "
                              f"{', '.join(BOOT_DEVICES)}.", kind="invalid_request")
        enabled = (sushy.BootSourceOverrideEnabled.CONTINUOUS if persistent
                   else sushy.BootSourceOverrideEnabled.ONCE)
        with self._client.system(node, f"set the boot device to {device}") as system:
            allowed = system.get_allowed_system_boot_source_values()
            if source not in allowed:
                offered = ", ".join(sorted(value.value for value in allowed)) or "none"
                raise DriverError(f"The BMC cannot boot from {device} ({source.value}); "
                                  f"it offers: {offered}.", kind="unsupported")
            system.set_system_boot_options(target=source, enabled=enabled,
                                           mode=boot_mode(node))

    def get_boot_device(self, node: NodeContext) -> str | None:
        """The override for the next boot: 'pxe', 'disk', 'http', 'cd' (or the Redfish name
        in lower case for other targets); None when no override is set."""
        with self._client.system(node, "read the boot device") as system:
            boot = system.boot
            if boot is None or boot.enabled in (None, sushy.BootSourceOverrideEnabled.DISABLED):
                return None
            if boot.target in (None, sushy.BootSource.NONE):
                return None
            device = _DEVICE_OF.get(boot.target)
            return device if device is not None else str(boot.target.value).lower()
