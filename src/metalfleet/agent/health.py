"""The agent's in-band health checks: what a node can tell about its own hardware.

:func:`run_checks` reads a :class:`HardwareRoot` (the node's ``/`` or a lab synthetic root)
and returns findings in the health engine's shape (``Finding.to_dict()``: check, component,
severity, message, evidence), the checks it ran (so the engine clears signals that are gone)
and the checks that do not apply here (no GPU, no InfiniBand, no EDAC driver ...).

Checks and their sources:

* ``gpu-xid``: ``NVRM: Xid`` lines of the kernel log since the current boot. The log is
  ``<root>/var/log/kern.log`` (rsyslog; lines after the last ``Linux version`` banner are
  this boot), else on the host ``journalctl -k -b`` (``/dev/kmsg`` needs privileges and is a
  ring buffer). No cursor is kept: a fatal XID (79 fallen off the bus, 48/94/95 ECC, 119/120
  GSP ...) leaves the GPU unusable until a reset, so "seen since boot" is the truth and the
  signal clears by itself after the reboot that repairs it. Other XIDs (13, 31, 43, 45: most
  often the application's fault) are warnings and only count for ``XID_RECENT_S`` after they
  happened (kernel timestamp against ``/proc/uptime``), so they never stick.
* ``gpu-ecc``: uncorrectable volatile ECC errors, row-remapping failure or pending remap,
  pending page retirement: NVML (``pynvml``) on the host, else the lab's
  ``run/metalfleet/nvml.json`` with these per-device fields: ``ecc_uncorrected_volatile``,
  ``ecc_corrected_volatile``, ``retired_pages_dbe``, ``retired_pages_sbe``,
  ``retired_pages_pending``, ``remapped_rows_correctable``, ``remapped_rows_uncorrectable``,
  ``remap_pending``, ``remap_failure``.
* ``gpu-missing``: fewer GPUs visible (NVML, else the PCI bus) than ``expected``.
* ``gpu-throttle``: NVML's clocks event reasons with a hardware slowdown, thermal or power
  brake bit set (a warning: cooling, power supply or a brake signal needs a look; idle and
  the software power cap are normal).
* ``pcie-width``: a GPU or HCA whose link width is below its maximum: NVML's current and
  maximum width for GPUs it knows (in a VM sysfs shows the virtual port), else sysfs's
  ``current_link_width`` against ``max_link_width``.
* ``ib-link-down``: an InfiniBand port whose ``state`` is not ACTIVE, or an expected port
  that is gone. Component: the device (``mlx5_3``), ``mlx5_3/2`` for ports other than 1.
* ``disk-smart``: the SMART health verdict, NVMe critical warning bits, media errors and
  ATA pending/uncorrectable sectors, from ``smartctl -j -H -A`` on the host (smartmontools;
  needs root), else ``run/metalfleet/smart/<disk>.json`` (the same JSON shape).
* ``edac``: uncorrectable memory errors (``sys/devices/system/edac/mc/mc*/ue_count``).

Fans and temperatures are BMC-side: the conductor's BMC sweep reports them.
GPU components are ``GPU<NVML index>`` (0-based, as nvidia-smi and DCGM's ``gpu`` label).

Stdlib only: this module runs inside the deploy ramdisk and on deployed nodes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import NVIDIA_VENDOR, NVML_JSON, nvml_json
from metalfleet.agent.nvml import read_nvml

CHECKS = ("gpu-xid", "gpu-ecc", "gpu-missing", "gpu-throttle", "pcie-width", "ib-link-down",
          "disk-smart", "edac")
KERN_LOG = "var/log/kern.log"
SMART_DIR = "run/metalfleet/smart"
XID_RECENT_S = 3600.0
# XIDs after which the GPU needs a reset or replacement (NVIDIA's XID catalogue).
FATAL_XIDS = frozenset({46, 48, 54, 56, 57, 61, 62, 63, 64, 65, 74, 79, 92, 94, 95, 109, 110,
                        119, 120, 121, 136, 140, 143, 144, 145, 146, 147, 148, 149, 150, 151,
                        154, 155, 156})
GPU_PCI_CLASSES = (0x0300, 0x0302)
HCA_PCI_CLASSES = (0x0207,)  # InfiniBand controllers
COMMAND_TIMEOUT_S = 20.0

_XID_LINE = re.compile(
    r"(?:.*?\[\s*(?P<stamp>\d+\.\d+)\])?.*?NVRM: Xid \(PCI:(?P<bus>[0-9a-fA-F:.]+)\): "
    r"(?P<xid>\d+),\s*(?P<detail>.*)")
_NVME_WARNING_BITS = {0: "available spare below threshold", 1: "temperature out of range",
                      2: "reliability degraded (media or internal errors)",
                      3: "media placed in read-only mode", 4: "volatile memory backup failed",
                      5: "persistent memory region read-only"}
_ATA_WATCHED = {5: "Reallocated_Sector_Ct", 197: "Current_Pending_Sector",
                198: "Offline_Uncorrectable"}


@dataclass
class CheckReport:
    findings: list[dict[str, Any]]
    checks_run: list[str]
    not_applicable: list[str]
    reasons: dict[str, str] = field(default_factory=dict)  # check -> why it did not apply


def _finding(check: str, component: str, severity: str, message: str,
             **evidence: Any) -> dict[str, Any]:
    return {"check": check, "component": component, "severity": severity, "message": message,
            "evidence": evidence}


class _Context:
    """What several checks share, read once: GPUs (NVML or PCI), GPU bus ids, expectations."""

    def __init__(self, root: HardwareRoot, expected: dict[str, Any] | None,
                 run: Callable[[list[str]], str | None]) -> None:
        self.root = root
        self.expected = expected
        self.run = run
        self.nvml = _nvml(root)
        self.gpus: list[dict[str, Any]]
        if self.nvml is not None:
            self.gpus = [{"index": int(d.get("index", i)),
                          "pci_bus_id": sysfs_bus_id(str(d["pci_bus_id"]))
                          if d.get("pci_bus_id") else None}
                         for i, d in enumerate(self.nvml.get("devices", []))]
        else:
            self.gpus = [{"index": i, "pci_bus_id": bus} for i, bus in enumerate(pci_gpus(root))]
        self.expected_gpus = _expected_count(expected, "gpus", "gpu_count")
        self.gpu_by_bus = {str(g["pci_bus_id"]): int(g["index"]) for g in self.gpus
                           if g.get("pci_bus_id")}
        for gpu in (expected or {}).get("gpus") or []:  # a GPU gone from NVML keeps its name
            if isinstance(gpu, dict) and gpu.get("pci_bus_id") and gpu.get("index") is not None:
                self.gpu_by_bus.setdefault(str(gpu["pci_bus_id"]).lower(), int(gpu["index"]))

    @property
    def has_gpus(self) -> bool:
        return bool(self.gpus) or bool(self.expected_gpus)


def sysfs_bus_id(nvml_bus_id: str) -> str:
    """NVML's ``00000000:18:00.0`` -> sysfs's ``0000:18:00.0``."""
    domain, sep, rest = nvml_bus_id.strip().lower().partition(":")
    return f"{int(domain, 16):04x}:{rest}" if sep else nvml_bus_id.lower()


def _expected_count(expected: dict[str, Any] | None, list_key: str, count_key: str) -> int:
    if not expected:
        return 0
    counted = expected.get(count_key)
    listed = expected.get(list_key)
    return max(int(counted or 0), len(listed) if isinstance(listed, list) else 0)


def _nvml(root: HardwareRoot) -> dict[str, Any] | None:
    """The lab's NVML answers, else (host only) the live NVML's health counters."""
    if root.exists(NVML_JSON):
        return nvml_json(root)
    return read_nvml() if root.is_host else None


# --- GPU checks ---------------------------------------------------------------------------


KERN_LOG_TAIL_BYTES = 4 * 1024 * 1024  # a busy kern.log is large; XIDs of interest are recent


def _log_tail(root: HardwareRoot, relative: str) -> str | None:
    try:
        with root.resolve(relative).open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - KERN_LOG_TAIL_BYTES))
            return stream.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def kernel_log(root: HardwareRoot, run: Callable[[list[str]], str | None]) -> str | None:
    """This boot's kernel log: the tail of kern.log after its last boot banner, else (host
    only) ``journalctl -k -b``, else ``dmesg`` (a ring buffer of this boot alone; the only
    source on minimal images without rsyslog or journald, such as the deploy ramdisk or the
    H200 test machine; needs root, which the agent has)."""
    text = _log_tail(root, KERN_LOG)
    if text is not None:
        banner = text.rfind("Linux version ")
        return text[text.rfind("\n", 0, banner) + 1:] if banner >= 0 else text
    if not root.is_host:
        return None
    if shutil.which("journalctl"):
        found = run(["journalctl", "-k", "-b", "0", "-o", "short-monotonic", "--no-pager", "-q"])
        if found is not None:
            return found
    if shutil.which("dmesg"):
        return run(["dmesg", "--kernel"])
    return None


def parse_xids(log_text: str) -> list[dict[str, Any]]:
    """Every ``NVRM: Xid`` line: ``{"xid", "pci_bus_id" (sysfs form), "uptime_s", "detail"}``."""
    xids = []
    for line in log_text.splitlines():
        match = _XID_LINE.search(line)
        if match is None:
            continue
        bus = match["bus"].lower()
        if bus.count(":") == 2 and "." not in bus:
            bus += ".0"  # the driver prints "0000:18:00", sysfs says "0000:18:00.0"
        xids.append({"xid": int(match["xid"]), "pci_bus_id": sysfs_bus_id(bus),
                     "uptime_s": float(match["stamp"]) if match["stamp"] else None,
                     "detail": match["detail"].strip()})
    return xids


def _uptime(root: HardwareRoot) -> float | None:
    text = root.read_text("proc/uptime")
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


def check_gpu_xid(ctx: _Context) -> list[dict[str, Any]] | None:
    log_text = kernel_log(ctx.root, ctx.run)
    if log_text is None:
        return None
    uptime = _uptime(ctx.root)
    by_gpu: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for xid in parse_xids(log_text):
        fatal = xid["xid"] in FATAL_XIDS
        stale = (uptime is not None and xid["uptime_s"] is not None
                 and uptime - xid["uptime_s"] > XID_RECENT_S)
        if not fatal and stale:
            continue
        index = ctx.gpu_by_bus.get(xid["pci_bus_id"])
        component = f"GPU{index}" if index is not None else f"PCI:{xid['pci_bus_id']}"
        by_gpu.setdefault((component, fatal), []).append(xid)
    findings = []
    for (component, fatal), seen in sorted(by_gpu.items()):
        codes = sorted({x["xid"] for x in seen})
        last = seen[-1]
        findings.append(_finding(
            "gpu-xid", component, "critical" if fatal else "warning",
            f"{component}: Xid {', '.join(map(str, codes))} "
            f"{'since boot' if fatal else 'recently'}: {last['detail']}",
            xids=codes, count=len(seen), pci_bus_id=last["pci_bus_id"],
            last=last["detail"], fatal=fatal))
    return findings


def check_gpu_ecc(ctx: _Context) -> list[dict[str, Any]] | None:
    if ctx.nvml is None:
        return None
    findings = []
    for position, device in enumerate(ctx.nvml.get("devices", [])):
        component = f"GPU{int(device.get('index', position))}"
        counters = {key: device[key] for key in (
            "ecc_uncorrected_volatile", "ecc_corrected_volatile", "retired_pages_dbe",
            "retired_pages_pending", "remapped_rows_uncorrectable", "remapped_rows_correctable",
            "remap_pending", "remap_failure") if key in device}
        problems: list[tuple[str, str]] = []
        if int(device.get("ecc_uncorrected_volatile") or 0) > 0:
            problems.append(("critical", f"{device['ecc_uncorrected_volatile']} uncorrectable "
                                         "ECC errors since the driver loaded"))
        if device.get("remap_failure"):
            problems.append(("critical", "row remapping failed: the GPU needs replacement"))
        if device.get("remap_pending"):
            problems.append(("warning", "a row remap is pending: the GPU needs a reset"))
        if device.get("retired_pages_pending"):
            problems.append(("warning", "a page retirement is pending: the GPU needs a reset"))
        if problems:
            severity = "critical" if any(s == "critical" for s, _ in problems) else "warning"
            findings.append(_finding("gpu-ecc", component, severity,
                                     f"{component}: " + "; ".join(m for _, m in problems),
                                     **counters))
    return findings


def check_gpu_missing(ctx: _Context) -> list[dict[str, Any]] | None:
    if not ctx.expected_gpus:
        return None
    visible = len(ctx.gpus)
    if visible >= ctx.expected_gpus:
        return []
    seen = {g["pci_bus_id"] for g in ctx.gpus}
    gone = [g for g in (ctx.expected or {}).get("gpus") or []
            if isinstance(g, dict) and g.get("pci_bus_id") and g["pci_bus_id"] not in seen]
    if gone:
        return [_finding("gpu-missing", f"GPU{g.get('index')}", "critical",
                         f"GPU{g.get('index')} ({g['pci_bus_id']}) is gone: {visible} of "
                         f"{ctx.expected_gpus} GPUs visible", expected=ctx.expected_gpus,
                         visible=visible, pci_bus_id=g["pci_bus_id"], uuid=g.get("uuid"))
                for g in gone]
    return [_finding("gpu-missing", "", "critical",
                     f"{visible} of {ctx.expected_gpus} GPUs visible",
                     expected=ctx.expected_gpus, visible=visible)]


# --- PCIe, InfiniBand ---------------------------------------------------------------------


_PCI_CACHE: dict[str, tuple[tuple[str, ...], list[tuple[str, bool]]]] = {}


def watched_pci(root: HardwareRoot) -> list[tuple[str, bool]]:
    """(address, is_gpu) of every NVIDIA GPU and InfiniBand HCA on the PCI bus.

    Cached per root while the bus listing stays the same: a device's class and vendor do not
    change in place, and the lab runs these checks for every node every second.
    """
    listing = tuple(root.list_dir("sys/bus/pci/devices") or [])
    cached = _PCI_CACHE.get(str(root.path))
    if cached is not None and cached[0] == listing:
        return cached[1]
    watched = []
    for address in listing:
        base = f"sys/bus/pci/devices/{address}"
        pci_class = root.read_int(f"{base}/class", 16)
        if pci_class is None:
            continue
        if pci_class >> 8 in HCA_PCI_CLASSES:
            watched.append((address, False))
        elif (pci_class >> 8 in GPU_PCI_CLASSES
              and root.read_int(f"{base}/vendor", 16) == NVIDIA_VENDOR):
            watched.append((address, True))  # not the BMC's VGA chip
    if len(_PCI_CACHE) > 4096:
        _PCI_CACHE.clear()
    _PCI_CACHE[str(root.path)] = (listing, watched)
    return watched


def pci_gpus(root: HardwareRoot) -> list[str]:
    """Bus addresses of NVIDIA display/3D controllers (when NVML is not there to ask), in
    bus order as NVML numbers them (plain sort: addresses are fixed-width hex)."""
    return sorted(address for address, is_gpu in watched_pci(root) if is_gpu)


def _int_at(base: str, name: str) -> int | None:
    """A sysfs integer; plain ``open`` because this runs for every device of every lab node."""
    try:
        with open(os.path.join(base, name), encoding="utf-8") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def check_pcie_width(ctx: _Context) -> list[dict[str, Any]] | None:
    root = ctx.root
    watched = 0
    findings = []
    by_nvml = set()
    for position, device in enumerate((ctx.nvml or {}).get("devices", [])):
        current, maximum = device.get("pcie_link_width"), device.get("pcie_link_width_max")
        if not (isinstance(current, int) and isinstance(maximum, int) and device.get(
                "pci_bus_id")):
            continue
        # NVML's link is the GPU's own; in a VM, sysfs shows the virtual root port's instead.
        address = sysfs_bus_id(str(device["pci_bus_id"]))
        by_nvml.add(address)
        watched += 1
        if current < maximum:
            component = f"GPU{int(device.get('index', position))}"
            findings.append(_finding(
                "pcie-width", component, "warning",
                f"{component} ({address}) PCIe link runs at x{current} of x{maximum}",
                pci_address=address, current_width=current, max_width=maximum,
                current_gen=device.get("pcie_link_gen"),
                max_gen=device.get("pcie_link_gen_max"), source="nvml"))
    for address, _ in watched_pci(root):
        if address in by_nvml:
            continue
        base = f"sys/bus/pci/devices/{address}"
        directory = str(root.resolve(base))
        current = _int_at(directory, "current_link_width")
        maximum = _int_at(directory, "max_link_width")
        if current is None or maximum is None:
            continue
        watched += 1
        if current < maximum:
            gpu = ctx.gpu_by_bus.get(address)
            component = f"GPU{gpu}" if gpu is not None else address
            findings.append(_finding(
                "pcie-width", component, "warning",
                f"{component} ({address}) PCIe link runs at x{current} of x{maximum}",
                pci_address=address, current_width=current, max_width=maximum,
                current_speed=root.read_text(f"{base}/current_link_speed"),
                max_speed=root.read_text(f"{base}/max_link_speed")))
    return findings if watched else None


# NVML clocks event (throttle) reasons that mean the hardware is protecting itself: the
# slowdown, thermal and power-brake bits. Idle (0x1), application clocks (0x2), the software
# power cap (0x4) and sync boost (0x10) are normal operation.
HW_SLOWDOWN_BITS = {0x8: "hardware slowdown (thermal or power brake asserted)",
                    0x20: "software thermal slowdown (GPU or memory over its max operating "
                          "temperature)",
                    0x40: "hardware thermal slowdown (temperature too high)",
                    0x80: "hardware power brake slowdown (external power brake assertion)"}


def check_gpu_throttle(ctx: _Context) -> list[dict[str, Any]] | None:
    """GPUs the hardware is slowing down to protect itself (cooling, PSU or power brake)."""
    devices = [d for d in (ctx.nvml or {}).get("devices", [])
               if isinstance(d.get("clocks_throttle_reasons"), int)]
    if not devices:
        return None
    findings = []
    for position, device in enumerate(devices):
        reasons = int(device["clocks_throttle_reasons"])
        why = [text for bit, text in sorted(HW_SLOWDOWN_BITS.items()) if reasons & bit]
        if why:
            component = f"GPU{int(device.get('index', position))}"
            findings.append(_finding(
                "gpu-throttle", component, "warning", f"{component}: " + "; ".join(why),
                clocks_throttle_reasons=f"0x{reasons:x}",
                temperature_c=device.get("temperature_c"), power_w=device.get("power_w"),
                clock_sm_mhz=device.get("clock_sm_mhz")))
    return findings


def check_ib_link(ctx: _Context) -> list[dict[str, Any]] | None:
    root = ctx.root
    seen = 0
    findings = []
    for device in root.list_dir("sys/class/infiniband") or []:
        for port in root.list_dir(f"sys/class/infiniband/{device}/ports") or []:
            seen += 1
            base = f"sys/class/infiniband/{device}/ports/{port}"
            state = root.read_text(f"{base}/state") or ""
            name = state.partition(":")[2].strip() or state
            if name != "ACTIVE":
                component = device if port == "1" else f"{device}/{port}"
                findings.append(_finding(
                    "ib-link-down", component, "critical",
                    f"InfiniBand {device} port {port} is {name or 'unreadable'}",
                    device=device, port=port, state=name or None,
                    phys_state=root.read_text(f"{base}/phys_state"),
                    rate=root.read_text(f"{base}/rate")))
    expected = _expected_count(ctx.expected, "infiniband", "ib_ports")
    if seen < expected:
        present = set(root.list_dir("sys/class/infiniband") or [])
        gone = sorted({str(p.get("device")) for p in (ctx.expected or {}).get("infiniband") or []
                       if isinstance(p, dict) and p.get("device") not in present})
        findings.append(_finding(
            "ib-link-down", gone[0] if len(gone) == 1 else "", "critical",
            f"{seen} of {expected} InfiniBand ports present"
            + (f" ({', '.join(gone)} gone)" if gone else ""),
            expected=expected, present=seen, gone=gone))
    return findings if seen or expected else None


# --- disks and memory ---------------------------------------------------------------------


def _smart_of(ctx: _Context, disk: str) -> dict[str, Any] | None:
    text = ctx.root.read_text(f"{SMART_DIR}/{disk}.json")
    if text is None and ctx.root.is_host and shutil.which("smartctl"):
        text = ctx.run(["smartctl", "-j", "-H", "-A", f"/dev/{disk}"])
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    # smartctl's exit status bits 0-1 (bad arguments, device open failed) leave no verdict
    if not isinstance(data, dict) or "smart_status" not in data:
        return None
    return data


def _smart_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if (data.get("smart_status") or {}).get("passed") is False:
        problems.append(("critical", "SMART overall health self-assessment FAILED"))
    nvme = data.get("nvme_smart_health_information_log") or {}
    warning = int(nvme.get("critical_warning") or 0)
    if warning:
        bits = [text for bit, text in _NVME_WARNING_BITS.items() if warning >> bit & 1]
        problems.append(("critical", f"NVMe critical warning 0x{warning:02x}: "
                                     + ", ".join(bits or ["unknown bit"])))
    if int(nvme.get("media_errors") or 0) > 0:
        problems.append(("warning", f"{nvme['media_errors']} media errors"))
    if int(nvme.get("percentage_used") or 0) >= 100:
        problems.append(("warning", f"endurance used {nvme['percentage_used']}%"))
    for attribute in (data.get("ata_smart_attributes") or {}).get("table") or []:
        if not isinstance(attribute, dict):
            continue
        raw = int((attribute.get("raw") or {}).get("value") or 0)
        if attribute.get("id") in _ATA_WATCHED and raw > 0:
            problems.append(("warning", f"{_ATA_WATCHED[attribute['id']]} = {raw}"))
        if attribute.get("when_failed") in ("now",):
            problems.append(("critical", f"attribute {attribute.get('name')} failing now"))
    return problems


def check_disk_smart(ctx: _Context) -> list[dict[str, Any]] | None:
    read_any = False
    findings = []
    for disk in ctx.root.list_dir("sys/block") or []:
        if not disk.startswith(("nvme", "sd", "hd")):
            continue
        data = _smart_of(ctx, disk)
        if data is None:
            continue
        read_any = True
        problems = _smart_problems(data)
        if problems:
            severity = "critical" if any(s == "critical" for s, _ in problems) else "warning"
            nvme = data.get("nvme_smart_health_information_log") or {}
            findings.append(_finding(
                "disk-smart", disk, severity, f"{disk}: " + "; ".join(m for _, m in problems),
                model=data.get("model_name"), serial=data.get("serial_number"),
                smart_passed=(data.get("smart_status") or {}).get("passed"),
                critical_warning=nvme.get("critical_warning"),
                media_errors=nvme.get("media_errors")))
    return findings if read_any else None


def check_edac(ctx: _Context) -> list[dict[str, Any]] | None:
    controllers = [c for c in ctx.root.list_dir("sys/devices/system/edac/mc") or []
                   if c.startswith("mc")]
    if not controllers:
        return None
    findings = []
    for mc in controllers:
        base = f"sys/devices/system/edac/mc/{mc}"
        ue = ctx.root.read_int(f"{base}/ue_count")
        if ue:
            dimms = {d: ctx.root.read_int(f"{base}/{d}/dimm_ue_count")
                     for d in ctx.root.list_dir(base) or [] if d.startswith(("dimm", "rank"))}
            bad = {ctx.root.read_text(f"{base}/{d}/dimm_label") or d: n
                   for d, n in dimms.items() if n}
            findings.append(_finding(
                "edac", mc, "critical", f"memory controller {mc}: {ue} uncorrectable errors"
                + (f" on {', '.join(bad)}" if bad else ""), ue_count=ue,
                ce_count=ctx.root.read_int(f"{base}/ce_count"), dimms=bad))
    return findings


# --- entry point --------------------------------------------------------------------------

_GPU_CHECKS: dict[str, Callable[[_Context], list[dict[str, Any]] | None]] = {
    "gpu-xid": check_gpu_xid, "gpu-ecc": check_gpu_ecc, "gpu-missing": check_gpu_missing,
    "gpu-throttle": check_gpu_throttle}
_OTHER_CHECKS: dict[str, Callable[[_Context], list[dict[str, Any]] | None]] = {
    "pcie-width": check_pcie_width, "ib-link-down": check_ib_link,
    "disk-smart": check_disk_smart, "edac": check_edac}
_WHY_NOT = {"gpu-xid": "no readable kernel log", "gpu-ecc": "no NVML (no driver or pynvml)",
            "gpu-throttle": "no clocks event reasons from NVML",
            "gpu-missing": "no expected GPU count (inventory)",
            "pcie-width": "no GPU or HCA with PCIe link attributes",
            "ib-link-down": "no InfiniBand ports", "disk-smart": "no SMART data readable",
            "edac": "no EDAC memory controller"}


def run_command(argv: list[str]) -> str | None:
    """A helper's stdout, or None when it fails to start or times out (never raises)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout or None


def run_checks(root: HardwareRoot, expected: dict[str, Any] | None = None, *,
               run: Callable[[list[str]], str | None] = run_command) -> CheckReport:
    """Every check that applies to this node; ``expected`` = its inventory from inspection
    (``gpus`` / ``infiniband`` lists) and/or counts (``gpu_count``, ``ib_ports``)."""
    ctx = _Context(root, expected, run)
    report = CheckReport(findings=[], checks_run=[], not_applicable=[])
    checks = {**_GPU_CHECKS, **_OTHER_CHECKS}
    for name, check in checks.items():
        if name in _GPU_CHECKS and not ctx.has_gpus:
            found, why = None, "no GPU on this node"
        else:
            try:
                found, why = check(ctx), _WHY_NOT[name]
            except Exception as exc:  # one broken source must not hide the other checks
                found, why = None, f"check failed: {type(exc).__name__}: {exc}"
        if found is None:
            report.not_applicable.append(name)
            report.reasons[name] = why
        else:
            report.checks_run.append(name)
            report.findings.extend(found)
    return report
