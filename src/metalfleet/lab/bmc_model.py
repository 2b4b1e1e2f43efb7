"""The state behind the lab's Redfish BMCs: emulated systems, their power and boot override.

One :class:`LabBmcEmulator` holds many :class:`LabSystem` records, as one sushy-tools
emulator does. Power changes take effect ``power_delay`` seconds after they are requested,
as on a real BMC; a pending change is stored with its due time and applied the next time
anyone looks at the system, so there is no timer thread. With ``state_file`` the systems are
saved as JSON after every change and loaded again on start.
"""

from __future__ import annotations

import copy
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

POWER_ON = "On"
POWER_OFF = "Off"
BOOT_TARGETS = ("None", "Pxe", "Hdd", "UefiHttp", "Cd")
BOOT_ENABLED = ("Disabled", "Once", "Continuous")
BOOT_MODES = ("UEFI", "Legacy")
RESET_TYPES = ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart")
STATE_FILE_VERSION = 1


@dataclass
class LabNic:
    mac: str
    speed_mbps: int = 25_000
    link_up: bool = True


def default_sensors() -> list[dict[str, Any]]:
    """A healthy server's chassis sensors (Redfish classic ``Thermal``): fans and temperatures.

    Each: ``{"name", "kind": "fan"|"temperature", "reading", "health": OK|Warning|Critical,
    "upper_critical"}``; lab faults change a reading and its health.
    """
    fans = [{"name": f"FAN{index}", "kind": "fan", "reading": 9800.0, "health": "OK",
             "upper_critical": None} for index in range(1, 7)]
    temps = [{"name": name, "kind": "temperature", "reading": reading, "health": "OK",
              "upper_critical": critical}
             for name, reading, critical in (("Inlet Temp", 24.0, 45.0), ("CPU1 Temp", 52.0, 95.0),
                                             ("CPU2 Temp", 50.0, 95.0))]
    return fans + temps


MAX_LOG_ENTRIES = 500  # the SEL is a ring buffer on real BMCs too


@dataclass
class PendingPower:
    """A power change the BMC accepted and will apply at ``due`` (wall-clock seconds)."""

    target: str
    boots: bool
    due: float


@dataclass
class LabSystem:
    """One emulated server as its BMC sees it."""

    id: str
    name: str
    power_state: str = POWER_OFF
    boot_target: str | None = None
    boot_enabled: str = "Disabled"
    boot_mode: str = "UEFI"
    manufacturer: str = "Metalfleet Lab"
    model: str = "LabServer 8G"
    serial: str = ""
    bios_version: str = "1.0.0"
    processors: list[dict[str, Any]] = field(default_factory=list)
    memory_gib: int = 0
    dimms: list[dict[str, Any]] = field(default_factory=list)
    nics: list[LabNic] = field(default_factory=list)
    username: str = "admin"
    password: str = field(default="password", repr=False)
    boot_count: int = 0
    last_boot_target: str | None = None
    pending: PendingPower | None = None
    sensors: list[dict[str, Any]] = field(default_factory=default_sensors)
    log: list[dict[str, Any]] = field(default_factory=list)  # SEL entries (Redfish LogEntry)
    log_next_id: int = 1

    @classmethod
    def new(
        cls,
        name: str,
        *,
        cpus: int = 2,
        cores_per_cpu: int = 32,
        gpus: int = 0,
        gpu_model: str = "NVIDIA H100 80GB HBM3",
        dimm_count: int = 16,
        dimm_gib: int = 64,
        nic_count: int = 2,
        nic_speed_mbps: int = 100_000,
        username: str = "admin",
        password: str = "password",
        **extra: Any,
    ) -> LabSystem:
        """A system with a fresh UUID, plausible hardware and locally administered MACs."""
        system_id = str(uuid.uuid4())
        processors: list[dict[str, Any]] = [
            {"ProcessorType": "CPU", "Manufacturer": "Intel(R) Corporation",
             "Model": "Intel(R) Xeon(R) Platinum 8480+", "ProcessorArchitecture": "x86",
             "InstructionSet": "x86-64", "TotalCores": cores_per_cpu,
             "TotalThreads": cores_per_cpu * 2, "MaxSpeedMHz": 3800}
            for _ in range(cpus)
        ]
        processors += [
            {"ProcessorType": "GPU", "Manufacturer": "NVIDIA", "Model": gpu_model}
            for _ in range(gpus)
        ]
        dimms = [{"CapacityMiB": dimm_gib * 1024, "MemoryDeviceType": "DDR5",
                  "OperatingSpeedMhz": 4800} for _ in range(dimm_count)]
        seed = uuid.UUID(system_id).bytes
        nics = [LabNic(mac=_lab_mac(seed, index), speed_mbps=nic_speed_mbps)
                for index in range(nic_count)]
        return cls(id=system_id, name=name, serial=f"LAB{seed.hex()[:10].upper()}",
                   processors=processors, memory_gib=dimm_count * dimm_gib, dimms=dimms,
                   nics=nics, username=username, password=password, **extra)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabSystem:
        values = dict(data)
        values["nics"] = [LabNic(**nic) for nic in values.get("nics", [])]
        pending = values.get("pending")
        values["pending"] = PendingPower(**pending) if pending else None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def credentials_match(system: LabSystem, username: str, password: str) -> bool:
    """Constant-time comparison of both the user name and the password."""
    user_ok = hmac.compare_digest(system.username.encode(), username.encode())
    password_ok = hmac.compare_digest(system.password.encode(), password.encode())
    return user_ok and password_ok


def _lab_mac(seed: bytes, index: int) -> str:
    # 0x52 = locally administered, unicast (as QEMU's 52:54:00 prefix).
    octets = [0x52, 0x4D, seed[0], seed[1], seed[2], (seed[3] + index) % 256]
    return ":".join(f"{octet:02x}" for octet in octets)


class LabBmcEmulator:
    """Many emulated BMCs behind one Redfish service; every method is thread-safe."""

    def __init__(
        self,
        systems: list[LabSystem] | None = None,
        *,
        state_file: Path | None = None,
        power_delay: float = 0.5,
        clock: Callable[[], float] = time.time,
        service_uuid: str | None = None,
    ) -> None:
        self.power_delay = power_delay
        self.service_uuid = service_uuid or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"metalfleet-lab-bmc:{state_file or 'memory'}"))
        self.state_file = state_file
        self._clock = clock
        self._lock = threading.RLock()
        self._systems: dict[str, LabSystem] = {}
        if state_file is not None and state_file.exists():
            for system in _load(state_file):
                self._systems[system.id] = system
        for system in systems or []:
            self._systems[system.id] = copy.deepcopy(system)
        if systems:
            self._save()

    # -- the fleet ---------------------------------------------------------------------------

    def add_system(self, system: LabSystem) -> LabSystem:
        with self._lock:
            self._systems[system.id] = copy.deepcopy(system)
            self._save()
            return copy.deepcopy(system)

    def remove(self, system_id: str) -> bool:
        with self._lock:
            removed = self._systems.pop(system_id, None) is not None
            if removed:
                self._save()
            return removed

    def get(self, system_id: str) -> LabSystem | None:
        """A copy of the system, with its pending power change applied if it is due."""
        with self._lock:
            system = self._systems.get(system_id)
            if system is None:
                return None
            if self._settle(system):
                self._save()
            return copy.deepcopy(system)

    def systems(self) -> list[LabSystem]:
        """Copies of every system, pending power changes applied where due."""
        with self._lock:
            changed = [self._settle(system) for system in self._systems.values()]
            if any(changed):
                self._save()
            return copy.deepcopy(list(self._systems.values()))

    def update(self, system_id: str, **changes: Any) -> LabSystem:
        """Change fields of a system directly (lab faults, hardware swaps); returns a copy."""
        with self._lock:
            system = self._require(system_id)
            self._settle(system)
            for name, value in changes.items():
                if name in ("id", "pending") or not hasattr(system, name):
                    raise AttributeError(f"LabSystem field {name!r} cannot be updated")
                setattr(system, name, value)
            self._save()
            return copy.deepcopy(system)

    def set_sensor(self, system_id: str, name: str, *, reading: float | None = None,
                   health: str | None = None) -> dict[str, Any]:
        """Change one chassis sensor (lab faults); returns a copy of it. KeyError if unknown."""
        if health is not None and health not in ("OK", "Warning", "Critical"):
            raise ValueError(f"sensor health must be OK, Warning or Critical, not {health!r}")
        with self._lock:
            system = self._require(system_id)
            for sensor in system.sensors:
                if sensor["name"] == name:
                    if reading is not None:
                        sensor["reading"] = reading
                    if health is not None:
                        sensor["health"] = health
                    self._save()
                    return dict(sensor)
            raise KeyError(f"{system.name} has no sensor {name!r}")

    def add_log_entry(self, system_id: str, *, severity: str, message: str,
                      message_id: str = "", sensor_type: str = "") -> dict[str, Any]:
        """Append a SEL entry (Severity OK|Warning|Critical), as the BMC does on an event."""
        with self._lock:
            system = self._require(system_id)
            entry = {"Id": str(system.log_next_id), "Severity": severity, "Message": message,
                     "MessageId": message_id, "SensorType": sensor_type, "EntryType": "SEL",
                     "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock()))}
            system.log_next_id += 1
            system.log = [*system.log, entry][-MAX_LOG_ENTRIES:]
            self._save()
            return dict(entry)

    def authorized(self, username: str, password: str) -> list[str]:
        """Ids of the systems whose BMC accepts these credentials."""
        with self._lock:
            return [system.id for system in self._systems.values()
                    if credentials_match(system, username, password)]

    # -- BMC operations ----------------------------------------------------------------------

    def reset(self, system_id: str, reset_type: str) -> None:
        """Accept a ComputerSystem.Reset; requests that change nothing are accepted no-ops."""
        if reset_type not in RESET_TYPES:
            raise ValueError(f"unsupported ResetType {reset_type!r}")
        with self._lock:
            system = self._require(system_id)
            self._settle(system)
            current = system.power_state
            heading = system.pending.target if system.pending else current
            if reset_type == "On":
                if heading == POWER_ON:
                    return
                self._schedule(system, POWER_ON, boots=True)
            elif reset_type in ("ForceOff", "GracefulShutdown"):
                if heading == POWER_OFF:
                    return
                if current == POWER_OFF:
                    system.pending = None  # cancel a power-on that has not happened yet
                else:
                    self._schedule(system, POWER_OFF, boots=False)
            elif reset_type == "GracefulRestart" and heading == POWER_OFF:
                return  # nothing runs that could restart gracefully
            else:  # ForceRestart (powers on a machine that is off), GracefulRestart when on
                self._schedule(system, POWER_ON, boots=True)
            self._save()

    def set_boot_override(
        self,
        system_id: str,
        *,
        target: str | None = None,
        enabled: str | None = None,
        mode: str | None = None,
    ) -> None:
        if target is not None and target not in BOOT_TARGETS:
            raise ValueError(f"unsupported BootSourceOverrideTarget {target!r}")
        if enabled is not None and enabled not in BOOT_ENABLED:
            raise ValueError(f"unsupported BootSourceOverrideEnabled {enabled!r}")
        if mode is not None and mode not in BOOT_MODES:
            raise ValueError(f"unsupported BootSourceOverrideMode {mode!r}")
        with self._lock:
            system = self._require(system_id)
            self._settle(system)
            if target is not None:
                system.boot_target = None if target == "None" else target
            if enabled is not None:
                system.boot_enabled = enabled
            if mode is not None:
                system.boot_mode = mode
            self._save()

    # -- internals ---------------------------------------------------------------------------

    def _require(self, system_id: str) -> LabSystem:
        system = self._systems.get(system_id)
        if system is None:
            raise KeyError(system_id)
        return system

    def _schedule(self, system: LabSystem, target: str, *, boots: bool) -> None:
        system.pending = PendingPower(target=target, boots=boots,
                                      due=self._clock() + self.power_delay)

    def _settle(self, system: LabSystem) -> bool:
        """Apply the pending power change if it is due; True if anything changed."""
        pending = system.pending
        if pending is None or pending.due > self._clock():
            return False
        system.pending = None
        system.power_state = pending.target
        if pending.boots:
            overridden = system.boot_enabled != "Disabled" and system.boot_target is not None
            system.last_boot_target = system.boot_target if overridden else "Hdd"
            system.boot_count += 1
            if system.boot_enabled == "Once":
                system.boot_enabled = "Disabled"
        return True

    def _save(self) -> None:
        if self.state_file is None:
            return
        document = {"version": STATE_FILE_VERSION,
                    "systems": [system.to_dict() for system in self._systems.values()]}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_name(self.state_file.name + ".tmp")
        # The file holds the lab BMCs' passwords: readable by the owner only.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2, sort_keys=True)
        os.replace(temporary, self.state_file)


def _load(path: Path) -> list[LabSystem]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("version") != STATE_FILE_VERSION:
        raise ValueError(f"{path} is not a lab BMC state file (version {STATE_FILE_VERSION})")
    return [LabSystem.from_dict(item) for item in document.get("systems", [])]
