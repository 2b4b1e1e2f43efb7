"""Hardware inventory from procfs/sysfs (and NVML for GPUs), as a JSON-serialisable dict.

The same code reads a real node's ``/`` and the lab's synthetic roots. GPUs come from,
in order: ``<root>/run/metalfleet/nvml.json`` (the lab's fake NVML answers), the real
NVML through the optional ``pynvml`` module (package ``nvidia-ml-py``, only on the host
root), and finally NVIDIA display/3D controllers seen on the PCI bus (no name or memory).

``run/metalfleet/nvml.json`` format (what NVML would answer; the lab writes it)::

    {
      "format": "metalfleet-nvml/1",
      "driver_version": "550.90.07",          # nvmlSystemGetDriverVersion
      "cuda_version": "12.4",                  # nvmlSystemGetCudaDriverVersion
      "devices": [
        {
          "index": 0,
          "name": "NVIDIA H100 80GB HBM3",     # nvmlDeviceGetName
          "uuid": "GPU-6f1c...",               # nvmlDeviceGetUUID
          "memory_total_mib": 81559,           # nvmlDeviceGetMemoryInfo().total / MiB
          "pci_bus_id": "00000000:18:00.0",    # nvmlDeviceGetPciInfo().busId
          "nvlink_active_links": 18            # links with nvmlDeviceGetNvLinkState == 1
        }
      ]
    }

Any other field of agent/nvml.py's list may appear per device; inventory keeps those of
``GPU_INVENTORY_FIELDS`` (ECC mode, retired pages and remapped rows, power limit, maximum
clocks, PCIe link, MIG mode, serial and VBIOS) when the source answers them.

Stdlib only: this module runs inside the deploy ramdisk.
"""

from __future__ import annotations

import json
import platform
import re
from typing import Any

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.nvml import read_nvml

NVML_JSON = "run/metalfleet/nvml.json"
NVIDIA_VENDOR = 0x10DE
GPU_PCI_CLASSES = (0x0300, 0x0302)  # VGA controller, 3D controller (class >> 8)
SKIPPED_BLOCK_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "sr", "nbd", "fd")
INTERESTING_CPU_FLAGS = frozenset(
    {
        "aes", "amx_bf16", "amx_int8", "amx_tile", "avx", "avx2", "avx512_bf16",
        "avx512_fp16", "avx512_vnni", "avx512bw", "avx512f", "avx_vnni", "fma", "ht",
        "hypervisor", "pdpe1gb", "sha_ni", "sse4_2", "svm", "vmx",
        # aarch64 "Features"
        "asimd", "sve", "sve2", "sha2", "atomics",
    }
)  # fmt: skip
# What inventory keeps of NVML's answers beyond identity: facts that change only with a
# firmware update, a reconfiguration or a fault (not readings: those are the exporter's).
GPU_INVENTORY_FIELDS = (
    "serial", "vbios_version", "pci_device_id", "ecc_enabled", "ecc_pending_enabled",
    "retired_pages_sbe", "retired_pages_dbe", "retired_pages_pending",
    "remapped_rows_correctable", "remapped_rows_uncorrectable", "remap_pending",
    "remap_failure", "power_limit_w", "clock_graphics_max_mhz", "clock_sm_max_mhz",
    "clock_memory_max_mhz", "pcie_link_width", "pcie_link_gen_max",
    "pcie_link_width_max", "mig_enabled")


def collect_inventory(root: HardwareRoot) -> dict[str, Any]:
    """Everything the conductor records about a node's hardware."""
    gpus, gpu_driver = _gpus(root)
    return {
        "cpu": _cpu(root),
        "memory": _memory(root),
        "disks": _disks(root),
        "nics": _nics(root),
        "pci": _pci(root),
        "gpus": gpus,
        "gpu_driver": gpu_driver,
        "infiniband": _infiniband(root),
        "dmi": _dmi(root),
    }


# --- CPU and memory ---------------------------------------------------------------------


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" in fields:
            blocks.append(fields)
    return blocks


def _cpu(root: HardwareRoot) -> dict[str, Any]:
    blocks = _cpuinfo_blocks(root.read_text("proc/cpuinfo") or "")
    first = blocks[0] if blocks else {}
    threads = len(blocks)
    pairs: set[tuple[str, str]] = set()
    for block in blocks:
        package, core = block.get("physical id"), block.get("core id")
        if package is None or core is None:  # not x86: ask sysfs topology
            cpu = f"sys/devices/system/cpu/cpu{block['processor']}/topology"
            package = package or root.read_text(f"{cpu}/physical_package_id")
            core = core or root.read_text(f"{cpu}/core_id")
        if package is not None and core is not None:
            pairs.add((package, core))
    sockets = len({package for package, _ in pairs}) or (1 if threads else 0)
    cores = len(pairs) or sockets * int(first.get("cpu cores", "0") or 0) or threads
    flags = set((first.get("flags") or first.get("Features") or "").split())
    return {
        "model": first.get("model name") or first.get("Model Name") or first.get("cpu model"),
        "sockets": sockets,
        "cores": cores,
        "threads": threads,
        "arch": _arch(root, first, flags),
        "flags": sorted(flags & INTERESTING_CPU_FLAGS),
    }


def _arch(root: HardwareRoot, first: dict[str, str], flags: set[str]) -> str | None:
    if root.is_host:
        return platform.machine() or None
    if "flags" in first:
        return "x86_64" if "lm" in flags else "i686"
    if "CPU architecture" in first:
        return "aarch64" if first["CPU architecture"].startswith("8") else "arm"
    return None


def _memory(root: HardwareRoot) -> dict[str, Any]:
    for line in (root.read_text("proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return {"total_mib": int(line.split()[1]) // 1024}  # value is in kB
    return {"total_mib": None}


# --- disks, NICs, PCI ---------------------------------------------------------------------


def _disks(root: HardwareRoot) -> list[dict[str, Any]]:
    disks = []
    for name in root.list_dir("sys/block") or []:
        if name.startswith(SKIPPED_BLOCK_PREFIXES):
            continue
        base = f"sys/block/{name}"
        sectors = root.read_int(f"{base}/size")
        rotational = root.read_int(f"{base}/queue/rotational") == 1
        kind = "nvme" if name.startswith("nvme") else ("hdd" if rotational else "ssd")
        disks.append(
            {
                "name": name,
                "path": f"/dev/{name}",
                "size_bytes": sectors * 512 if sectors is not None else None,
                "model": root.read_text(f"{base}/device/model"),
                "serial": root.read_text(f"{base}/device/serial"),
                "rotational": rotational,
                "type": kind,
            }
        )
    return disks


def _driver_of(root: HardwareRoot, device_dir: str) -> str | None:
    name = root.link_name(f"{device_dir}/driver")
    if name:
        return name
    for line in (root.read_text(f"{device_dir}/uevent") or "").splitlines():
        if line.startswith("DRIVER="):
            return line.partition("=")[2] or None
    return None


def _nics(root: HardwareRoot) -> list[dict[str, Any]]:
    nics = []
    for name in root.list_dir("sys/class/net") or []:
        if name == "lo":
            continue
        base = f"sys/class/net/{name}"
        speed = root.read_int(f"{base}/speed")
        nics.append(
            {
                "name": name,
                "mac": (root.read_text(f"{base}/address") or "").lower() or None,
                "speed_mbps": speed if speed is not None and speed > 0 else None,
                "link": "up" if root.read_text(f"{base}/operstate") == "up" else "down",
                "driver": _driver_of(root, f"{base}/device"),
            }
        )
    return nics


def _hex(value: int | None, width: int) -> str | None:
    return None if value is None else f"0x{value:0{width}x}"


def _pci(root: HardwareRoot) -> list[dict[str, Any]]:
    devices = []
    for address in root.list_dir("sys/bus/pci/devices") or []:
        base = f"sys/bus/pci/devices/{address}"
        devices.append(
            {
                "address": address,
                "vendor_id": _hex(root.read_int(f"{base}/vendor", 16), 4),
                "device_id": _hex(root.read_int(f"{base}/device", 16), 4),
                "class_code": _hex(root.read_int(f"{base}/class", 16), 6),
            }
        )
    return devices


# --- GPUs ---------------------------------------------------------------------------------


def _sysfs_bus_id(nvml_bus_id: str) -> str:
    """NVML's ``00000000:18:00.0`` -> sysfs's ``0000:18:00.0`` (so it joins with ``pci``)."""
    domain, sep, rest = nvml_bus_id.strip().lower().partition(":")
    return f"{int(domain, 16):04x}:{rest}" if sep else nvml_bus_id.lower()


def _gpus(root: HardwareRoot) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    answers = nvml_json(root)
    if answers is None and root.is_host:
        answers = read_nvml()
    if answers is None:
        return _gpus_from_pci(root), None
    gpus = [
        {
            "index": int(dev["index"]),
            "name": dev.get("name"),
            "uuid": dev.get("uuid"),
            "memory_mib": dev.get("memory_total_mib"),
            "pci_bus_id": _sysfs_bus_id(dev["pci_bus_id"]) if dev.get("pci_bus_id") else None,
            "nvlink": int(dev.get("nvlink_active_links") or 0) > 0,
            **{key: dev[key] for key in GPU_INVENTORY_FIELDS if key in dev},
        }
        for dev in answers.get("devices", [])
    ]
    driver = {
        "driver_version": answers.get("driver_version"),
        "cuda_version": answers.get("cuda_version"),
    }
    return sorted(gpus, key=lambda gpu: gpu["index"]), driver


def nvml_json(root: HardwareRoot) -> dict[str, Any] | None:
    """The lab's recorded NVML answers (``NVML_JSON``), None if absent or unreadable."""
    text = root.read_text(NVML_JSON)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _gpus_from_pci(root: HardwareRoot) -> list[dict[str, Any]]:
    gpus: list[dict[str, Any]] = []
    for address in root.list_dir("sys/bus/pci/devices") or []:
        base = f"sys/bus/pci/devices/{address}"
        pci_class = root.read_int(f"{base}/class", 16)
        if root.read_int(f"{base}/vendor", 16) != NVIDIA_VENDOR or pci_class is None:
            continue
        if pci_class >> 8 in GPU_PCI_CLASSES:
            gpus.append(
                {
                    "index": len(gpus),
                    "name": None,
                    "uuid": None,
                    "memory_mib": None,
                    "pci_bus_id": address,
                    "nvlink": False,
                }
            )
    return gpus


# --- InfiniBand and DMI -------------------------------------------------------------------


def _rate_gbps(text: str | None) -> float | None:
    match = re.match(r"\s*([0-9.]+)\s*Gb/sec", text or "")
    return float(match.group(1)) if match else None


def _infiniband(root: HardwareRoot) -> list[dict[str, Any]]:
    ports = []
    for device in root.list_dir("sys/class/infiniband") or []:
        for port in root.list_dir(f"sys/class/infiniband/{device}/ports") or []:
            base = f"sys/class/infiniband/{device}/ports/{port}"
            state = root.read_text(f"{base}/state") or ""  # "4: ACTIVE"
            ports.append(
                {
                    "device": device,
                    "port": int(port) if port.isdigit() else port,
                    "state": state.partition(":")[2].strip() or state or None,
                    "rate_gbps": _rate_gbps(root.read_text(f"{base}/rate")),
                    "link_layer": root.read_text(f"{base}/link_layer"),
                }
            )
    return ports


def _dmi(root: HardwareRoot) -> dict[str, Any]:
    keys = ("sys_vendor", "product_name", "product_serial", "bios_version", "board_name")
    return {key: root.read_text(f"sys/class/dmi/id/{key}") for key in keys}
