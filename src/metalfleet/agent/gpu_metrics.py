"""GPU metrics with dcgm-exporter's names (``DCGM_FI_DEV_*``), from NVML or the lab's fake NVML.

Labels: ``gpu`` (NVML index), ``UUID``, ``modelName``, ``pci_bus_id``. Devices come from, in
order, ``<root>/run/metalfleet/nvml.json`` (the lab's fake NVML; see agent/inventory.py for
its format and the optional per-device fields below), then the real NVML through ``pynvml``
on the host root. NVML has no pollable XID counter (XIDs arrive as events), so
``DCGM_FI_DEV_XID_ERRORS`` is the last XID the kernel logged for that GPU this boot
(``NVRM: Xid (PCI:0000:18:00): 79, ...`` in the kernel log as agent/health.py reads it:
the tail of kern.log after its last boot banner, else journald, else dmesg), 0 if none:
what dcgm-exporter shows too (the value of the last XID). PCIe link width/generation come from sysfs
(``current_link_width``/``current_link_speed``) unless NVML says.

Optional per-device fields of ``nvml.json`` (what NVML would answer; absent = unknown and
left out, except the error counters, which a synthetic GPU reports as 0 when absent)::

    utilization_gpu_pct, memory_used_mib, temperature_c, power_w,
    ecc_corrected_volatile, ecc_uncorrected_volatile, retired_pages_sbe, retired_pages_dbe,
    remapped_rows_correctable, remapped_rows_uncorrectable, remap_failure,
    clocks_throttle_reasons, nvlink_crc_flit_errors, nvlink_crc_data_errors,
    pcie_link_width, pcie_link_gen, xid (last XID, if no kernel log says otherwise)

Stdlib only: this module runs on deployed nodes.
"""

from __future__ import annotations

import logging
from typing import Any

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.health import kernel_log, parse_xids, run_command
from metalfleet.agent.inventory import nvml_json
from metalfleet.agent.nvml import read_nvml
from metalfleet.agent.prom_text import Family

log = logging.getLogger("metalfleet.agent.gpu_metrics")


# (metric, nvml.json field, help, counter-like: 0 when a synthetic GPU does not say)
GPU_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "utilization_gpu_pct", "GPU utilization (in %).", False),
    ("DCGM_FI_DEV_GPU_TEMP", "temperature_c", "GPU temperature (in C).", False),
    ("DCGM_FI_DEV_POWER_USAGE", "power_w", "Power draw (in W).", False),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "ecc_corrected_volatile",
     "Total number of single-bit volatile ECC errors.", True),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "ecc_uncorrected_volatile",
     "Total number of double-bit volatile ECC errors.", True),
    ("DCGM_FI_DEV_RETIRED_SBE", "retired_pages_sbe",
     "Total number of retired pages due to single-bit errors.", True),
    ("DCGM_FI_DEV_RETIRED_DBE", "retired_pages_dbe",
     "Total number of retired pages due to double-bit errors.", True),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "remapped_rows_correctable",
     "Number of remapped rows for correctable errors.", True),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "remapped_rows_uncorrectable",
     "Number of remapped rows for uncorrectable errors.", True),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "remap_failure",
     "Whether remapping of rows has failed.", True),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "clocks_throttle_reasons",
     "Throttling reasons bitmask (NVML clocks_throttle_reasons).", True),
    ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "nvlink_crc_flit_errors",
     "Total number of NVLink flow-control CRC errors.", True),
    ("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "nvlink_crc_data_errors",
     "Total number of NVLink data CRC errors.", True),
    ("DCGM_FI_DEV_PCIE_LINK_WIDTH", "pcie_link_width", "PCIe link width (lanes).", False),
    ("DCGM_FI_DEV_PCIE_LINK_GEN", "pcie_link_gen", "PCIe link generation.", False),
)


def _pci_prefix(bus_id: str) -> str:
    """``00000000:18:00.0`` / ``0000:18:00.0`` -> ``0000:18:00`` (how NVRM names a GPU)."""
    domain, _, rest = bus_id.strip().lower().partition(":")
    try:
        return f"{int(domain, 16):04x}:{rest.split('.')[0]}"
    except ValueError:
        return bus_id.lower()


def kernel_xids(root: HardwareRoot) -> dict[str, int]:
    """The last XID logged per GPU this boot (keyed by ``0000:18:00``), from the kernel log
    the in-band checks read (agent/health.py: kern.log, journald or dmesg)."""
    text = kernel_log(root, run_command)
    if text is None:
        return {}
    return {_pci_prefix(xid["pci_bus_id"]): int(xid["xid"]) for xid in parse_xids(text)}


def _sysfs_pcie(root: HardwareRoot, bus_id: str) -> dict[str, Any]:
    """Current link width/generation from sysfs (the values NVML would give)."""
    base = f"sys/bus/pci/devices/{_pci_prefix(bus_id)}.{bus_id.rsplit('.', 1)[-1] or '0'}"
    out: dict[str, Any] = {}
    width = root.read_int(f"{base}/current_link_width")
    if width:
        out["pcie_link_width"] = width
    speed = root.read_text(f"{base}/current_link_speed") or ""  # "32.0 GT/s PCIe"
    gen = {"2.5": 1, "5.0": 2, "8.0": 3, "16.0": 4, "32.0": 5, "64.0": 6}.get(
        speed.split(" ")[0])
    if gen:
        out["pcie_link_gen"] = gen
    return out


def gpu_readings(root: HardwareRoot) -> list[dict[str, Any]]:
    """One dict per GPU: index, name, uuid, pci_bus_id, memory_total_mib and the fields
    of :data:`GPU_FIELDS` that are known; error counters 0 for synthetic GPUs."""
    answers = nvml_json(root)
    synthetic = answers is not None
    devices: list[dict[str, Any]]
    if answers is not None:
        devices = [dict(d) for d in answers.get("devices", []) if isinstance(d, dict)]
    elif root.is_host:
        devices = list((read_nvml() or {}).get("devices", []))
    else:
        devices = []
    xids = kernel_xids(root)
    for device in devices:
        bus = str(device.get("pci_bus_id") or "")
        if bus:
            for key, value in _sysfs_pcie(root, bus).items():
                device.setdefault(key, value)
            if _pci_prefix(bus) in xids:
                device["xid"] = xids[_pci_prefix(bus)]
        device.setdefault("xid", 0)
        if synthetic:
            for _, key, _, counter in GPU_FIELDS:
                if counter:
                    device.setdefault(key, 0)
    return sorted(devices, key=lambda d: int(d.get("index", 0)))


def gpu_families(root: HardwareRoot) -> list[Family]:
    families = {metric: Family(metric, text) for metric, _, text, _ in GPU_FIELDS}
    fb_used = Family("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).")
    fb_free = Family("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).")
    xid = Family("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.")
    for device in gpu_readings(root):
        labels = {"gpu": str(device.get("index", 0)), "UUID": str(device.get("uuid") or ""),
                  "modelName": str(device.get("name") or ""),
                  "pci_bus_id": str(device.get("pci_bus_id") or "")}
        for metric, key, _, _ in GPU_FIELDS:
            families[metric].add(_num(device.get(key)), **labels)
        used, total = _num(device.get("memory_used_mib")), _num(device.get("memory_total_mib"))
        fb_used.add(used, **labels)
        if used is not None and total is not None:
            fb_free.add(max(0.0, total - used), **labels)
        xid.add(_num(device.get("xid")), **labels)
    return [*families.values(), fb_used, fb_free, xid]


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None
