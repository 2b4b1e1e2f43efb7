"""Out-of-band hardware inventory over Redfish: what the BMC knows without booting the node.

:func:`collect_inventory` reads the system and then each part (processors and GPUs, PCIe
GPUs, memory, storage and drives, Ethernet interfaces and adapters, firmware, BIOS
attributes, Secure Boot, TPM). Every part is optional: a BMC that lacks one, or fails on
one, leaves that key empty and names the part in ``errors``; only the system itself is
required. The top-level keys ``cpu``, ``memory``, ``gpus``, ``disks`` and ``nics`` have
the same shape as the agent's in-band inventory so the rest of metalfleet reads either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from metalfleet.drivers.base import InspectInterface, NodeContext
from metalfleet.drivers.redfish.client import RedfishClient, default_client
from metalfleet.drivers.redfish.resources import (
    JSON,
    Fetch,
    absent,
    integer,
    link,
    links,
    member_docs,
    members,
    status,
    sushy_fetch,
    text,
)

SERVICE_ROOT = "/redfish/v1"
_GPU_CLASSES = ("DisplayController", "ProcessingAccelerators")
_GPU_VENDORS = re.compile(r"nvidia|amd|advanced micro|radeon|instinct|intel.*(gpu|max|flex)",
                          re.IGNORECASE)


def _cpus_and_gpus(fetch: Fetch, system: JSON) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cpus: list[JSON] = []
    gpus: list[dict[str, Any]] = []
    for proc in members(fetch, link(system, "Processors")):
        if absent(proc):
            continue
        kind = text(proc, "ProcessorType") or "CPU"
        if kind == "GPU":
            gpus.append(_gpu(proc, source="processor"))
        elif kind == "CPU":
            cpus.append(proc)
    raw_summary = system.get("ProcessorSummary")
    summary: JSON = raw_summary if isinstance(raw_summary, dict) else {}
    cores = sum(integer(p, "TotalCores") or 0 for p in cpus)
    threads = sum(integer(p, "TotalThreads") or 0 for p in cpus)
    first: JSON = cpus[0] if cpus else {}
    cpu = {
        "model": text(first, "Model", "Name") or text(summary, "Model"),
        "manufacturer": text(first, "Manufacturer"),
        "sockets": len(cpus) or integer(summary, "Count") or 0,
        "cores": cores or integer(summary, "CoreCount") or 0,
        "threads": threads or integer(summary, "LogicalProcessorCount") or 0,
        "max_speed_mhz": integer(first, "MaxSpeedMHz"),
        "arch": text(first, "InstructionSet"),
    }
    return cpu, gpus


def _gpu(doc: JSON, *, source: str) -> dict[str, Any]:
    return {
        "name": text(doc, "Model", "Name"),
        "vendor": text(doc, "Manufacturer"),
        "serial": text(doc, "SerialNumber"),
        "part_number": text(doc, "PartNumber"),
        "firmware": text(doc, "FirmwareVersion"),
        "slot": _location(doc) or text(doc, "Socket", "Id"),
        "health": status(doc)[1],
        "source": source,
    }


def _location(doc: JSON) -> str | None:
    location = doc.get("Location")
    if isinstance(location, dict):
        part = location.get("PartLocation")
        if isinstance(part, dict):
            return text(part, "ServiceLabel")
    slot = doc.get("Slot")
    if isinstance(slot, dict):
        return _location(slot)
    return None


def _pcie_gpus(fetch: Fetch, system: JSON, chassis: JSON | None) -> list[dict[str, Any]]:
    """GPUs seen as PCIe devices with a display or 3D/accelerator function."""
    paths = links(system, "PCIeDevices")
    devices = list(member_docs(fetch, paths))
    if not devices and chassis is not None:
        devices = list(members(fetch, link(chassis, "PCIeDevices")))
    gpus = []
    for device in devices:
        if absent(device):
            continue
        functions = list(members(fetch, link(device, "PCIeFunctions")))
        functions += list(member_docs(fetch, links(device, "Links", "PCIeFunctions")))
        if any(_is_gpu_function(fn) for fn in functions) or (
                not functions and text(device, "DeviceType") == "GPU"):
            gpu = _gpu(device, source="pcie")
            if gpu["vendor"] is None and functions:
                gpu["vendor"] = _vendor_from_id(text(functions[0], "VendorId"))
            gpus.append(gpu)
    return gpus


def _is_gpu_function(function: JSON) -> bool:
    if text(function, "DeviceClass") in _GPU_CLASSES:
        return True
    code = (text(function, "ClassCode") or "").lower().removeprefix("0x")
    return code.startswith(("03", "12"))  # display controller / processing accelerator


def _vendor_from_id(vendor_id: str | None) -> str | None:
    known = {"0x10de": "NVIDIA", "0x1002": "AMD", "0x8086": "Intel"}
    return known.get((vendor_id or "").lower())


def _merge_gpus(processors: list[dict[str, Any]],
                pcie: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BMCs that list GPUs as processors often list them as PCIe devices too: count once."""
    if not processors:
        return pcie
    serials = {str(gpu["serial"]) for gpu in processors if gpu["serial"]}
    extra = [gpu for gpu in pcie if gpu["serial"] and gpu["serial"] not in serials]
    return processors + extra


def _memory(fetch: Fetch, system: JSON) -> dict[str, Any]:
    modules = []
    for dimm in members(fetch, link(system, "Memory")):
        size = integer(dimm, "CapacityMiB")
        if absent(dimm) or not size:
            continue
        modules.append({
            "slot": text(dimm, "DeviceLocator", "Name", "Id"),
            "size_mib": size,
            "type": text(dimm, "MemoryDeviceType", "MemoryType"),
            "speed_mhz": integer(dimm, "OperatingSpeedMhz", "AllowedSpeedsMHz"),
            "manufacturer": text(dimm, "Manufacturer"),
            "part_number": text(dimm, "PartNumber"),
            "serial": text(dimm, "SerialNumber"),
            "health": status(dimm)[1],
        })
    summary = system.get("MemorySummary")
    total = sum(int(module["size_mib"] or 0) for module in modules)
    if not total and isinstance(summary, dict):
        gib = summary.get("TotalSystemMemoryGiB")
        total = int(float(gib) * 1024) if isinstance(gib, int | float) else 0
    return {"total_mib": total or None, "modules": modules}


def _storage(fetch: Fetch, system: JSON) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    controllers: list[dict[str, Any]] = []
    disks: list[dict[str, Any]] = []
    for storage in members(fetch, link(system, "Storage")):
        inline = storage.get("StorageControllers")
        docs = [c for c in inline if isinstance(c, dict)] if isinstance(inline, list) else []
        if not docs:
            docs = list(members(fetch, link(storage, "Controllers")))
        for ctrl in docs:
            controllers.append({"id": text(storage, "Id"), "name": text(ctrl, "Name"),
                                "model": text(ctrl, "Model"),
                                "firmware": text(ctrl, "FirmwareVersion"),
                                "protocols": ctrl.get("SupportedDeviceProtocols") or []})
        for drive in member_docs(fetch, links(storage, "Drives")):
            if absent(drive):
                continue
            disks.append(_drive(drive, text(storage, "Id")))
    if not controllers and not disks:  # older BMCs only have SimpleStorage
        for simple in members(fetch, link(system, "SimpleStorage")):
            for device in simple.get("Devices") or []:
                if isinstance(device, dict) and not absent(device):
                    disks.append(_drive(device, text(simple, "Id")))
    return controllers, disks


def _drive(drive: JSON, controller: str | None) -> dict[str, Any]:
    protocol = text(drive, "Protocol")
    media = text(drive, "MediaType")
    kind = "nvme" if protocol == "NVMe" else {"SSD": "ssd", "HDD": "hdd"}.get(media or "")
    return {
        "name": text(drive, "Name", "Id"),
        "model": text(drive, "Model"),
        "serial": text(drive, "SerialNumber"),
        "size_bytes": integer(drive, "CapacityBytes"),
        "kind": kind,
        "protocol": protocol,
        "media": media,
        "manufacturer": text(drive, "Manufacturer"),
        "firmware": text(drive, "Revision", "FirmwareVersion"),
        "controller": controller,
        "health": status(drive)[1],
    }


def _nics(fetch: Fetch, system: JSON) -> list[dict[str, Any]]:
    nics = []
    for nic in members(fetch, link(system, "EthernetInterfaces")):
        mac = text(nic, "MACAddress", "PermanentMACAddress")
        if absent(nic) or not mac:
            continue
        nics.append({
            "name": text(nic, "Id", "Name"),
            "mac": mac.lower().replace("-", ":"),
            "speed_mbps": integer(nic, "SpeedMbps"),
            "link": text(nic, "LinkStatus"),
            "enabled": nic.get("InterfaceEnabled") if isinstance(
                nic.get("InterfaceEnabled"), bool) else None,
        })
    return nics


def _network_adapters(fetch: Fetch, chassis: JSON | None) -> list[dict[str, Any]]:
    if chassis is None:
        return []
    adapters = []
    for adapter in members(fetch, link(chassis, "NetworkAdapters")):
        ports = adapter.get("Controllers")
        firmware = None
        if isinstance(ports, list) and ports and isinstance(ports[0], dict):
            package = ports[0].get("FirmwarePackageVersion")
            firmware = package if isinstance(package, str) else None
        adapters.append({"id": text(adapter, "Id"), "manufacturer": text(adapter, "Manufacturer"),
                         "model": text(adapter, "Model", "Name"),
                         "serial": text(adapter, "SerialNumber"),
                         "part_number": text(adapter, "PartNumber"), "firmware": firmware})
    return adapters


def _firmware(fetch: Fetch, root_path: str) -> list[dict[str, Any]]:
    service = fetch(f"{root_path}/UpdateService")
    items = []
    for item in members(fetch, link(service, "FirmwareInventory")):
        items.append({"id": text(item, "Id"), "name": text(item, "Name"),
                      "version": text(item, "Version"),
                      "updateable": item.get("Updateable") if isinstance(
                          item.get("Updateable"), bool) else None})
    return items


def _bios(fetch: Fetch, system: JSON) -> dict[str, Any]:
    path = link(system, "Bios")
    if path is None:
        return {}
    bios = fetch(path)
    attributes = bios.get("Attributes")
    return dict(attributes) if isinstance(attributes, dict) else {}


def _secure_boot(fetch: Fetch, system: JSON) -> dict[str, Any] | None:
    path = link(system, "SecureBoot")
    if path is None:
        return None
    doc = fetch(path)
    enabled = doc.get("SecureBootEnable")
    return {"enabled": enabled if isinstance(enabled, bool) else None,
            "current_boot": text(doc, "SecureBootCurrentBoot"),
            "mode": text(doc, "SecureBootMode")}


def _tpm(system: JSON) -> list[dict[str, Any]]:
    modules = system.get("TrustedModules")
    found = []
    for tpm in modules if isinstance(modules, list) else []:
        if not isinstance(tpm, dict) or absent(tpm):
            continue
        state, health = status(tpm)
        found.append({"interface": text(tpm, "InterfaceType"),
                      "firmware": text(tpm, "FirmwareVersion"), "state": state,
                      "health": health})
    return found


def _system(system: JSON) -> dict[str, Any]:
    raw_boot = system.get("Boot")
    boot: JSON = raw_boot if isinstance(raw_boot, dict) else {}
    return {
        "manufacturer": text(system, "Manufacturer"),
        "model": text(system, "Model"),
        "serial": text(system, "SerialNumber"),
        "sku": text(system, "SKU"),
        "uuid": text(system, "UUID"),
        "bios_version": text(system, "BiosVersion"),
        "hostname": text(system, "HostName"),
        "power_state": text(system, "PowerState"),
        "boot_mode": text(boot, "BootSourceOverrideMode"),
        "health": status(system)[1],
    }


def collect_inventory(fetch: Fetch, system_path: str,
                      root_path: str = SERVICE_ROOT) -> dict[str, Any]:
    """The whole out-of-band inventory of one system; only reading the system may raise."""
    system = fetch(system_path)
    errors: dict[str, str] = {}

    def part(name: str, read: Callable[[], Any], empty: Any) -> Any:
        try:
            return read()
        except Exception as exc:  # one broken section must not lose the others
            errors[name] = _reason(exc)
            return empty

    chassis_path = link(system, "Links", "Chassis")
    chassis = part("chassis", lambda: fetch(chassis_path) if chassis_path else None, None)
    cpu, processor_gpus = part("processors", lambda: _cpus_and_gpus(fetch, system),
                               ({"sockets": 0, "cores": 0, "threads": 0}, []))
    pcie_gpus = part("pcie_devices", lambda: _pcie_gpus(fetch, system, chassis), [])
    controllers, disks = part("storage", lambda: _storage(fetch, system), ([], []))
    return {
        "source": "redfish",
        "system": _system(system),
        "cpu": cpu,
        "gpus": _merge_gpus(processor_gpus, pcie_gpus),
        "memory": part("memory", lambda: _memory(fetch, system),
                       {"total_mib": None, "modules": []}),
        "storage_controllers": controllers,
        "disks": disks,
        "nics": part("ethernet_interfaces", lambda: _nics(fetch, system), []),
        "network_adapters": part("network_adapters",
                                 lambda: _network_adapters(fetch, chassis), []),
        "firmware": part("firmware", lambda: _firmware(fetch, root_path), []),
        "bios": {"version": text(system, "BiosVersion"),
                 "attributes": part("bios", lambda: _bios(fetch, system), {})},
        "secure_boot": part("secure_boot", lambda: _secure_boot(fetch, system), None),
        "tpm": part("tpm", lambda: _tpm(system), []),
        "errors": errors,
    }


def _reason(exc: Exception) -> str:
    code = getattr(exc, "status_code", None)
    if code is not None:
        return f"HTTP {code}"
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class RedfishInspect(InspectInterface):
    """Inspection from the BMC alone (no agent): the ``redfish`` hardware type's inspect."""

    def __init__(self, client: RedfishClient | None = None) -> None:
        self._client = client or default_client()

    def inspect(self, node: NodeContext) -> dict[str, Any]:
        with self._client.system(node, "read the hardware inventory") as system:
            return collect_inventory(sushy_fetch(system._conn), system.path)
