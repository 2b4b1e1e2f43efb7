"""Lab fault injection: make one lab node's synthetic hardware (and its BMC) show a fault.

Each kind changes exactly what a real fault changes, so the real detectors find it: the
agent's in-band checks (:mod:`metalfleet.agent.health`) read the synthetic root, the BMC
sweep reads the emulated Redfish sensors and SEL.

==============  ================================================================  =========
kind            what changes                                                      component
==============  ================================================================  =========
gpu-xid         an ``NVRM: Xid 79`` line in ``var/log/kern.log`` + a SEL entry    GPU<n>
gpu-ecc         NVML: uncorrectable volatile ECC errors and a pending row remap   GPU<n>
gpu-missing     the GPU disappears from NVML (``run/metalfleet/nvml.json``)       GPU<n>
fan             the BMC's fan sensor reads 0 RPM, health Critical, + SEL entry    FAN<n>
ib-link-down    ``sys/class/infiniband/<dev>/ports/1/state`` = DOWN               mlx5_<n>
disk-smart      SMART: health FAILED, NVMe critical warning 0x04, media errors    nvme0n1
pcie-width      the GPU's PCIe link trained at x8 of x16, Gen4 speed              GPU<n>
edac            3 uncorrectable errors on a memory controller (EDAC ue_count)     mc<n>
==============  ================================================================  =========

Before a file is first changed its original is kept under ``run/metalfleet/fault-originals``;
:meth:`FaultBook.clear` puts every original back (and the BMC's sensors to nominal, with
"deasserted" SEL entries), which is what a repaired node looks like. The book of active faults
is ``<lab dir>/faults.json``; the lab rebuilds roots on start, then :meth:`FaultBook.reapply`
puts the recorded faults back, so a restart keeps the lab as it was.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.health import KERN_LOG, SMART_DIR, pci_gpus, sysfs_bus_id
from metalfleet.agent.inventory import NVML_JSON
from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.lab.bmc_model import LabBmcEmulator, default_sensors
from metalfleet.lab.fleet import LAB_LABEL
from metalfleet.lab.synthetic_hardware import MARKER

KINDS = ("gpu-xid", "gpu-ecc", "gpu-missing", "fan", "ib-link-down", "disk-smart",
         "pcie-width", "edac")
ORIGINALS = "run/metalfleet/fault-originals"
INJECTED_XID = 79
FAILED_FAN_RPM = 0.0


@dataclass(frozen=True)
class Fault:
    node: str
    kind: str
    component: str
    injected_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabNodeRef:
    """What fault injection needs of a lab node: its synthetic root and its BMC system id."""

    name: str
    root: Path
    system_id: str | None

    @classmethod
    def of(cls, node: m.Node) -> LabNodeRef:
        root = (node.driver_info or {}).get("hardware_root")
        if (node.labels or {}).get(LAB_LABEL) != "true" or not root:
            raise ValidationError(f"{node.name} is not a lab node; faults can only be injected "
                                  "into nodes of the lab fleet (metalfleet up --lab N)",
                                  field="node")
        system_id = node.bmc_address.rstrip("/").rsplit("/", 1)[-1] if node.bmc_address else None
        return cls(node.name, Path(root), system_id)

    def spec(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ValidationError(f"{self.name}'s synthetic root {self.root} is missing; "
                                  "restart the lab to rebuild it", field="node") from None
        return data if isinstance(data, dict) else {}


# --- files ------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    """Readers (the health loop) see the old or the new file, never half of one."""
    temporary = path.with_name(f".{path.name}.fault-tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _keep_original(ref: LabNodeRef, relative: str) -> Path:
    path = ref.root / relative
    saved = ref.root / ORIGINALS / relative
    if not saved.exists() and path.exists():
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(path.read_bytes())
    return path


def _edit_json(ref: LabNodeRef, relative: str) -> tuple[Path, dict[str, Any]]:
    path = _keep_original(ref, relative)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValidationError(f"{ref.name} has no readable {relative}; restart the lab to "
                              "rebuild its synthetic root", field="node") from None
    return path, data


def _restore_originals(ref: LabNodeRef) -> None:
    saved_root = ref.root / ORIGINALS
    if not saved_root.exists():
        return
    for saved in sorted(p for p in saved_root.rglob("*") if p.is_file()):
        target = ref.root / saved.relative_to(saved_root)
        _write_atomic(target, saved.read_text(encoding="utf-8"))
        saved.unlink()


# --- components -------------------------------------------------------------------------------


def _indexed(value: str | None, prefix: str, count: int, what: str, node: str) -> int:
    text = (value or f"{prefix}0").strip()
    digits = text[len(prefix):] if text.lower().startswith(prefix.lower()) else text
    if not digits.isdigit() or not 0 <= int(digits) < count:
        valid = f"{prefix}0..{prefix}{count - 1}" if count else "none"
        raise ValidationError(f"{node} has no {what} {text!r}; valid: {valid}",
                              field="component")
    return int(digits)


def normalize_component(ref: LabNodeRef, kind: str, component: str | None,
                        emulator: LabBmcEmulator | None) -> str:
    """The canonical component name (``GPU3``, ``FAN2``, ``mlx5_1``, ``nvme0n1``)."""
    if kind not in KINDS:
        raise ValidationError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}",
                              field="kind")
    spec = ref.spec()
    if kind.startswith("gpu-") or kind == "pcie-width":
        count = int((spec.get("gpus") or {}).get("count") or 0)
        if not count:
            raise ValidationError(f"{ref.name} has no GPUs; GPU faults need a GPU node "
                                  "(lab-gpu-NN)", field="kind")
        return f"GPU{_indexed(component, 'GPU', count, 'GPU', ref.name)}"
    if kind == "ib-link-down":
        ports = int((spec.get("ib") or {}).get("ports") or 0)
        if not ports:
            raise ValidationError(f"{ref.name} has no InfiniBand ports; use a GPU node "
                                  "(lab-gpu-NN)", field="kind")
        return f"mlx5_{_indexed(component, 'mlx5_', ports, 'InfiniBand device', ref.name)}"
    if kind == "edac":
        sockets = int(spec.get("sockets") or 1)
        return f"mc{_indexed(component, 'mc', sockets, 'memory controller', ref.name)}"
    if kind == "disk-smart":
        disk = str((spec.get("disk") or {}).get("name") or "nvme0n1")
        if component not in (None, "", disk):
            raise ValidationError(f"{ref.name} has one disk, {disk}", field="component")
        return disk
    fans = [s["name"] for s in _sensors(ref, emulator) if s["kind"] == "fan"]
    name = (component or "FAN1").upper()
    name = f"FAN{name}" if name.isdigit() else name
    if name not in fans:
        raise ValidationError(f"{ref.name}'s BMC has no fan {component!r}; valid: "
                              f"{', '.join(fans)}", field="component")
    return name


def _sensors(ref: LabNodeRef, emulator: LabBmcEmulator | None) -> list[dict[str, Any]]:
    system = emulator.get(ref.system_id) if emulator and ref.system_id else None
    if system is None:
        raise ValidationError(f"{ref.name}'s BMC is not in this lab's emulator", field="node")
    return system.sensors


# --- applying faults --------------------------------------------------------------------------


def _gpu_bus(ref: LabNodeRef, index: int) -> str:
    """The GPU's PCI address: NVML's answer, else the index-th GPU on the bus."""
    try:
        devices = json.loads((ref.root / NVML_JSON).read_text(encoding="utf-8"))["devices"]
        for device in devices:
            if int(device["index"]) == index:
                return sysfs_bus_id(str(device["pci_bus_id"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    buses = pci_gpus(HardwareRoot(ref.root))
    return buses[index] if index < len(buses) else f"0000:{0x18 + index:02x}:00.0"


def _apply(ref: LabNodeRef, kind: str, component: str, emulator: LabBmcEmulator | None,
           *, bmc_log: bool = True) -> None:
    if kind == "gpu-xid":
        index = int(component[3:])
        bus = _gpu_bus(ref, index)
        path = _keep_original(ref, KERN_LOG)
        previous = path.read_text(encoding="utf-8") if path.exists() else ""
        line = (f"kernel: [{time.monotonic():12.6f}] NVRM: Xid (PCI:{bus.rsplit('.', 1)[0]}): "
                f"{INJECTED_XID}, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
        _write_atomic(path, previous.rstrip("\n") + "\n" + line + "\n")
        if emulator is not None and ref.system_id and bmc_log:
            emulator.add_log_entry(ref.system_id, severity="Critical", sensor_type="Processor",
                                   message_id="Platform.1.0.GpuXid",
                                   message=f"GPU {index} (PCI {bus}) reported Xid "
                                           f"{INJECTED_XID}: GPU has fallen off the bus")
    elif kind in ("gpu-ecc", "gpu-missing"):
        index = int(component[3:])
        path, data = _edit_json(ref, NVML_JSON)
        devices = [d for d in data.get("devices", []) if isinstance(d, dict)]
        if kind == "gpu-missing":
            data["devices"] = [d for d in devices if int(d.get("index", -1)) != index]
        else:
            for device in devices:
                if int(device.get("index", -1)) == index:
                    device.update(ecc_uncorrected_volatile=2, remapped_rows_uncorrectable=1,
                                  remap_pending=True)
        _write_atomic(path, json.dumps(data, indent=2))
    elif kind == "ib-link-down":
        base = f"sys/class/infiniband/{component}/ports/1"
        _write_atomic(_keep_original(ref, f"{base}/state"), "1: DOWN\n")
        _write_atomic(_keep_original(ref, f"{base}/phys_state"), "3: Disabled\n")
    elif kind == "disk-smart":
        path, data = _edit_json(ref, f"{SMART_DIR}/{component}.json")
        data["smart_status"] = {"passed": False, "nvme": {"value": 4}}
        health = data.setdefault("nvme_smart_health_information_log", {})
        health.update(critical_warning=0x04, media_errors=12, available_spare=3)
        _write_atomic(path, json.dumps(data, indent=2))
    elif kind == "pcie-width":
        base = f"sys/bus/pci/devices/{_gpu_bus(ref, int(component[3:]))}"
        _write_atomic(_keep_original(ref, f"{base}/current_link_width"), "8\n")
        _write_atomic(_keep_original(ref, f"{base}/current_link_speed"), "16.0 GT/s PCIe\n")
    elif kind == "edac":
        path = _keep_original(ref, f"sys/devices/system/edac/mc/{component}/ue_count")
        _write_atomic(path, "3\n")
    elif kind == "fan":
        if emulator is None or not ref.system_id:
            raise ValidationError(f"{ref.name}'s BMC is not in this lab's emulator", field="node")
        emulator.set_sensor(ref.system_id, component, reading=FAILED_FAN_RPM, health="Critical")
        if bmc_log:
            emulator.add_log_entry(ref.system_id, severity="Critical", sensor_type="Fan",
                                   message_id="EventLog.1.0.FanFailure",
                                   message=f"Fan {component}: Lower Critical going low - "
                                           f"asserted (reading {FAILED_FAN_RPM:.0f} RPM)")


def _repair(ref: LabNodeRef, faults: list[Fault], emulator: LabBmcEmulator | None) -> None:
    _restore_originals(ref)
    fans = [f.component for f in faults if f.kind == "fan"]
    if fans and emulator is not None and ref.system_id and emulator.get(ref.system_id):
        emulator.update(ref.system_id, sensors=default_sensors())
        for fan in fans:
            emulator.add_log_entry(ref.system_id, severity="OK", sensor_type="Fan",
                                   message_id="EventLog.1.0.FanRestored",
                                   message=f"Fan {fan}: Lower Critical going low - deasserted")


# --- the book ---------------------------------------------------------------------------------


class FaultBook:
    """The lab's active faults, persisted in ``path``; thread-safe."""

    def __init__(self, path: Path, emulator: LabBmcEmulator | None) -> None:
        self.path = path
        self.emulator = emulator
        self._lock = threading.Lock()

    def _load(self) -> list[Fault]:
        try:
            items = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [Fault(**item) for item in items if isinstance(item, dict)]

    def _save(self, faults: list[Fault]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path, json.dumps([f.to_dict() for f in faults], indent=2))

    def active(self, node: str | None = None) -> list[Fault]:
        with self._lock:
            return [f for f in self._load() if node is None or f.node == node]

    def inject(self, ref: LabNodeRef, kind: str, component: str | None = None) -> Fault:
        """Apply the fault (again, if it is there already: a second XID is a second event)."""
        with self._lock:
            name = normalize_component(ref, kind, component, self.emulator)
            _apply(ref, kind, name, self.emulator)
            faults = [f for f in self._load()
                      if (f.node, f.kind, f.component) != (ref.name, kind, name)]
            fault = Fault(ref.name, kind, name,
                          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._save([*faults, fault])
            return fault

    def clear(self, ref: LabNodeRef) -> list[Fault]:
        """Repair everything on the node; returns the faults that were active."""
        with self._lock:
            faults = self._load()
            cleared = [f for f in faults if f.node == ref.name]
            _repair(ref, cleared, self.emulator)
            self._save([f for f in faults if f.node != ref.name])
            return cleared

    def reapply(self, refs: dict[str, LabNodeRef]) -> int:
        """After the lab rebuilt its roots: put the recorded faults back; returns how many."""
        with self._lock:
            faults = self._load()
            applied = 0
            for fault in faults:
                ref = refs.get(fault.node)
                if ref is not None:
                    _apply(ref, fault.kind, fault.component, self.emulator, bmc_log=False)
                    applied += 1
            return applied
