"""``nvidia-smi -q -x`` parsed into agent/nvml.py's shape: the second opinion on a real GPU.

nvidia-smi ships with every NVIDIA driver; ``pynvml`` is a Python package a node may lack.
The agent's GPU check script (bench/gpu_device.py) compares the two field by field, and
:func:`read_nvidia_smi` is what the agent falls back to when NVML's Python binding is absent.

Element names move between driver branches (``power_readings`` became
``gpu_power_readings``, ``clocks_throttle_reasons`` became ``clocks_event_reasons``, Hopper
splits volatile ECC into SRAM and DRAM counters), so each field lists the paths it may have.
Values come as text with units (``143771 MiB``, ``75.12 W``, ``16x``, ``N/A``): a value
nvidia-smi does not know (``N/A``, ``[N/A]``, ``Not Supported``) is left out, as NVML's
NOT_SUPPORTED is.

Stdlib only: this module runs on deployed nodes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

COMMAND = ["nvidia-smi", "-q", "-x"]
TIMEOUT_S = 30.0
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

# NVML clocks event reason bits by nvidia-smi's element name (after the reason prefix).
EVENT_REASON_BITS = {
    "gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4,
    "hw_slowdown": 0x8, "sync_boost": 0x10, "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40, "hw_power_brake_slowdown": 0x80,
    "display_clocks_setting": 0x100,
}

# field -> (paths under <gpu>, kind): "int"/"float" parse the first number, "text" as is,
# "on" is Enabled/Yes -> True.
FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "name": (("product_name",), "text"),
    "uuid": (("uuid",), "text"),
    "serial": (("serial",), "text"),
    "vbios_version": (("vbios_version",), "text"),
    "pci_bus_id": (("pci/pci_bus_id",), "text"),
    "memory_total_mib": (("fb_memory_usage/total",), "int"),
    "memory_used_mib": (("fb_memory_usage/used",), "int"),
    "memory_reserved_mib": (("fb_memory_usage/reserved",), "int"),
    "ecc_enabled": (("ecc_mode/current_ecc",), "on"),
    "ecc_pending_enabled": (("ecc_mode/pending_ecc",), "on"),
    "remapped_rows_correctable": (("remapped_rows/remapped_row_corr",), "int"),
    "remapped_rows_uncorrectable": (("remapped_rows/remapped_row_unc",), "int"),
    "remap_pending": (("remapped_rows/remapped_row_pending",), "on"),
    "remap_failure": (("remapped_rows/remapped_row_failure",), "on"),
    "retired_pages_sbe": (("retired_pages/multiple_single_bit_retirement/retired_count",),
                          "int"),
    "retired_pages_dbe": (("retired_pages/double_bit_retirement/retired_count",), "int"),
    "retired_pages_pending": (("retired_pages/pending_blacklist",
                               "retired_pages/pending_retirement"), "on"),
    "utilization_gpu_pct": (("utilization/gpu_util",), "int"),
    "temperature_c": (("temperature/gpu_temp",), "int"),
    "power_w": (("gpu_power_readings/power_draw", "gpu_power_readings/instant_power_draw",
                 "power_readings/power_draw"), "float"),
    "power_limit_w": (("gpu_power_readings/current_power_limit",
                       "gpu_power_readings/enforced_power_limit",
                       "power_readings/enforced_power_limit"), "float"),
    "clock_graphics_mhz": (("clocks/graphics_clock",), "int"),
    "clock_sm_mhz": (("clocks/sm_clock",), "int"),
    "clock_memory_mhz": (("clocks/mem_clock",), "int"),
    "clock_graphics_max_mhz": (("max_clocks/graphics_clock",), "int"),
    "clock_sm_max_mhz": (("max_clocks/sm_clock",), "int"),
    "clock_memory_max_mhz": (("max_clocks/mem_clock",), "int"),
    "pcie_link_gen": (("pci/pci_gpu_link_info/pcie_gen/current_link_gen",), "int"),
    "pcie_link_gen_max": (("pci/pci_gpu_link_info/pcie_gen/max_device_link_gen",
                           "pci/pci_gpu_link_info/pcie_gen/max_link_gen"), "int"),
    "pcie_link_width": (("pci/pci_gpu_link_info/link_widths/current_link_width",), "int"),
    "pcie_link_width_max": (("pci/pci_gpu_link_info/link_widths/max_link_width",), "int"),
    "mig_enabled": (("mig_mode/current_mig",), "on"),
}
# Volatile ECC totals: Hopper's SRAM + DRAM counters, else the older per-location totals.
ECC_SOURCES = {
    "ecc_corrected_volatile": (("ecc_errors/volatile/sram_correctable",
                                "ecc_errors/volatile/dram_correctable"),
                               ("ecc_errors/volatile/single_bit/total",)),
    "ecc_uncorrected_volatile": (("ecc_errors/volatile/sram_uncorrectable_parity",
                                  "ecc_errors/volatile/sram_uncorrectable_secded",
                                  "ecc_errors/volatile/sram_uncorrectable",
                                  "ecc_errors/volatile/dram_uncorrectable"),
                                 ("ecc_errors/volatile/double_bit/total",)),
}
_UNKNOWN = {"", "n/a", "[n/a]", "not supported", "[not supported]", "unknown", "[unknown]"}


def _value(gpu: ET.Element, paths: tuple[str, ...], kind: str) -> Any:
    for path in paths:
        node = gpu.find(path)
        if node is None or node.text is None:
            continue
        raw = node.text.strip()
        if raw.lower() in _UNKNOWN:
            continue
        if kind == "text":
            return raw
        if kind == "on":
            return raw.lower() in {"enabled", "yes", "active", "true"}
        found = _NUMBER.search(raw)
        if found is None:
            continue
        return int(float(found.group())) if kind == "int" else float(found.group())
    return None


def _sum(gpu: ET.Element, paths: tuple[str, ...]) -> int | None:
    values = [_value(gpu, (path,), "int") for path in paths]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _event_reasons(gpu: ET.Element) -> int | None:
    block = gpu.find("clocks_event_reasons")
    if block is None:
        block = gpu.find("clocks_throttle_reasons")
    if block is None:
        return None
    mask, seen = 0, False
    for child in block:
        name = re.sub(r"^clocks_(event|throttle)_reason_", "", child.tag)
        bit = EVENT_REASON_BITS.get(name)
        if bit is None or child.text is None:
            continue
        seen = True
        if child.text.strip().lower() == "active":
            mask |= bit
    return mask if seen else None


def parse(xml_text: str) -> dict[str, Any]:
    """``nvidia-smi -q -x`` output -> ``{"driver_version", "cuda_version", "devices"}``."""
    root = ET.fromstring(xml_text)
    out: dict[str, Any] = {}
    for key in ("driver_version", "cuda_version"):
        node = root.find(key)
        if node is not None and node.text and node.text.strip().lower() not in _UNKNOWN:
            out[key] = node.text.strip()
    devices = []
    for index, gpu in enumerate(root.findall("gpu")):
        device: dict[str, Any] = {"index": index}
        minor = _value(gpu, ("minor_number",), "int")  # NVML order is PCI order, as is this
        for key, (paths, kind) in FIELDS.items():
            value = _value(gpu, paths, kind)
            if value is not None:
                device[key] = value
        device_id = _value(gpu, ("pci/pci_device_id",), "text")
        if device_id:  # "0x233510DE" (NVML's pciDeviceId: device << 16 | vendor)
            device["pci_device_id"] = "0x" + device_id.lower().removeprefix("0x")
        for key, (split, older) in ECC_SOURCES.items():
            total = _sum(gpu, split)
            if total is None:
                total = _sum(gpu, older)
            if total is not None:
                device[key] = total
        reasons = _event_reasons(gpu)
        if reasons is not None:
            device["clocks_throttle_reasons"] = reasons
        if minor is not None:
            device["minor_number"] = minor
        devices.append(device)
    out["devices"] = devices
    return out


def read_nvidia_smi() -> dict[str, Any] | None:
    """Run ``nvidia-smi -q -x`` and parse it; None without the tool or when it fails."""
    if shutil.which(COMMAND[0]) is None:
        return None
    try:
        done = subprocess.run(COMMAND, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    try:
        return parse(done.stdout)
    except ET.ParseError:
        return None
