"""GPU metrics with dcgm-exporter's names (``DCGM_FI_DEV_*``), from NVML or the lab's fake NVML.

Labels: ``gpu`` (NVML index), ``UUID``, ``modelName``, ``pci_bus_id``. Devices come from, in
order, ``<root>/run/metalfleet/nvml.json`` (the lab's fake NVML; see agent/inventory.py for
its format and the optional per-device fields below), then the real NVML through ``pynvml``
on the host root. NVML has no pollable XID counter (XIDs arrive as events), so
``DCGM_FI_DEV_XID_ERRORS`` is the last XID the kernel logged for that GPU this boot
(``NVRM: Xid (PCI:0000:18:00): 79, ...`` in ``<root>/var/log/kern.log`` after its last
``Linux version`` banner, as agent/health.py reads it), 0 if none: what dcgm-exporter shows
too (the value of the last XID). PCIe link width/generation come from sysfs
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

import contextlib
import functools
import importlib
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import nvml_json
from metalfleet.agent.prom_text import Family

log = logging.getLogger("metalfleet.agent.gpu_metrics")

KERN_LOG = "var/log/kern.log"
KERN_LOG_TAIL_BYTES = 4 * 1024 * 1024  # a busy kern.log is large; XIDs of interest are recent
_XID = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})\): (\d+)")
_MIB = 1024 * 1024

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
    """The last XID logged per GPU (keyed by ``0000:18:00``) in the tail of the kernel log."""
    path = root.resolve(KERN_LOG)
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - KERN_LOG_TAIL_BYTES))
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return {}
    banner = text.rfind("Linux version ")  # only this boot's XIDs (a reset clears them)
    if banner >= 0:
        text = text[banner:]
    return {_pci_prefix(match.group(1)): int(match.group(2)) for match in _XID.finditer(text)}


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
        devices = _nvml_live()
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_live() -> list[dict[str, Any]]:
    """The real NVML through the optional ``pynvml``; [] without it or without a driver."""
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when there is no NVIDIA driver
        return []
    try:
        return [_nvml_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    except Exception as exc:
        log.warning("NVML read failed: %s", exc)
        return []
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _nvml_device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    device: dict[str, Any] = {
        "index": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
        "pci_bus_id": _text(nvml.nvmlDeviceGetPciInfo(handle).busId),
    }

    def ask(key: str, read: Callable[[], Any]) -> None:
        try:  # each query may be NOT_SUPPORTED on this GPU (ECC off, no NVLink, MIG...)
            value = read()
        except Exception:
            return
        if value is not None:
            device[key] = value

    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    device["memory_total_mib"] = int(memory.total) // _MIB
    device["memory_used_mib"] = int(memory.used) // _MIB
    ask("utilization_gpu_pct", lambda: int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
    ask("temperature_c", lambda: int(nvml.nvmlDeviceGetTemperature(
        handle, nvml.NVML_TEMPERATURE_GPU)))
    ask("power_w", lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)  # mW
    for key, kind in (("ecc_corrected_volatile", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
                      ("ecc_uncorrected_volatile", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED")):
        ask(key, functools.partial(_ecc_total, nvml, handle, getattr(nvml, kind, None)))
    for key, cause in (("retired_pages_sbe",
                        "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS"),
                       ("retired_pages_dbe", "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR")):
        ask(key, functools.partial(_retired, nvml, handle, getattr(nvml, cause, None)))

    def remap() -> None:
        correctable, uncorrectable, _pending, failure = nvml.nvmlDeviceGetRemappedRows(handle)
        device.update(remapped_rows_correctable=int(correctable),
                      remapped_rows_uncorrectable=int(uncorrectable),
                      remap_failure=int(failure))

    ask("_remap", remap)
    ask("clocks_throttle_reasons",
        lambda: int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)))
    ask("pcie_link_width", lambda: int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)))
    ask("pcie_link_gen", lambda: int(nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)))
    ask("nvlink_crc_flit_errors", lambda: _nvlink_sum(
        nvml, handle, "NVML_NVLINK_ERROR_DL_CRC_FLIT"))
    ask("nvlink_crc_data_errors", lambda: _nvlink_sum(
        nvml, handle, "NVML_NVLINK_ERROR_DL_CRC_DATA"))
    return device


def _ecc_total(nvml: Any, handle: Any, kind: Any) -> int:
    return int(nvml.nvmlDeviceGetTotalEccErrors(handle, kind, nvml.NVML_VOLATILE_ECC))


def _retired(nvml: Any, handle: Any, cause: Any) -> int:
    return len(nvml.nvmlDeviceGetRetiredPages(handle, cause))


def _nvlink_sum(nvml: Any, handle: Any, counter: str) -> int | None:
    total, links = 0, 0
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        try:
            total += int(nvml.nvmlDeviceGetNvLinkErrorCounter(handle, link,
                                                               getattr(nvml, counter)))
            links += 1
        except Exception:  # NOT_SUPPORTED / past the last link
            break
    return total if links else None


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
