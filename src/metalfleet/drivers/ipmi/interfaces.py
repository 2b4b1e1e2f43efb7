"""The ``ipmi`` hardware type's power, boot and management interfaces (pyghmi)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.drivers.base import BootInterface, ManagementInterface, NodeContext, PowerInterface
from metalfleet.drivers.ipmi.client import IpmiClient, check, default_client

BOOT_DEVICES = {"pxe": "network", "disk": "hd", "cd": "optical"}
_DEVICE_OF = {ipmi: device for device, ipmi in BOOT_DEVICES.items()}
_FRU_CHUNK = 32  # small reads: some BMCs (and ipmi_sim) refuse pyghmi's 224-byte ones
_SEVERITY = {0: "info", 1: "warning", 2: "critical"}


def _uefi(node: NodeContext) -> bool:
    return str(node.driver_info.get("boot_mode", "uefi")).lower() == "uefi"


class IpmiPower(PowerInterface):
    def __init__(self, client: IpmiClient | None = None) -> None:
        self._client = client or default_client()

    def get_power_state(self, node: NodeContext) -> PowerState:
        with self._client.command(node, "read the power state") as cmd:
            state = check(cmd.get_power(), "get power").get("powerstate")
        return {"on": PowerState.ON, "off": PowerState.OFF}.get(str(state),
                                                                 PowerState.UNKNOWN)

    def set_power_state(self, node: NodeContext, state: PowerState, *, soft: bool = False) -> None:
        if state == PowerState.ON:
            wanted, action = "on", "power on"
        elif state == PowerState.OFF:
            wanted, action = ("softoff", "shut down") if soft else ("off", "power off")
        else:
            raise DriverError(f"Cannot set power state {state.value!r}: use on or off.",
                              kind="invalid_request")
        with self._client.command(node, action) as cmd:
            check(cmd.set_power(wanted, wait=False), action)

    def reboot(self, node: NodeContext) -> None:
        with self._client.command(node, "reboot") as cmd:
            current = check(cmd.get_power(), "get power").get("powerstate")
            check(cmd.set_power("on" if current == "off" else "reset", wait=False), "reboot")


class IpmiBoot(BootInterface):
    def __init__(self, client: IpmiClient | None = None) -> None:
        self._client = client or default_client()

    def set_boot_device(self, node: NodeContext, device: str, *, persistent: bool = False) -> None:
        target = BOOT_DEVICES.get(device)
        if target is None:
            raise DriverError(f"IPMI cannot boot from {device!r}: use one of "
                              f"{', '.join(BOOT_DEVICES)} (UEFI HTTP boot needs Redfish).",
                              kind="unsupported" if device == "http" else "invalid_request")
        with self._client.command(node, f"set the boot device to {device}") as cmd:
            check(cmd.set_bootdev(target, persist=persistent, uefiboot=_uefi(node)),
                  "set boot device")

    def get_boot_device(self, node: NodeContext) -> str | None:
        with self._client.command(node, "read the boot device") as cmd:
            answer = check(cmd.get_bootdev(), "get boot device")
        device = str(answer.get("bootdev") or "default")
        if device == "default":
            return None
        return _DEVICE_OF.get(device, device)


class IpmiManagement(ManagementInterface):
    def __init__(self, client: IpmiClient | None = None) -> None:
        self._client = client or default_client()

    def validate(self, node: NodeContext) -> dict[str, Any]:
        with self._client.command(node, "read the BMC") as cmd:
            power = check(cmd.get_power(), "get power").get("powerstate")
            facts: dict[str, Any] = {"power_state": str(power)}
            try:
                facts.update(read_fru(cmd))
            except Exception:  # FRU is optional; power answered, so the BMC works
                facts["fru"] = None
            return facts

    def sensors(self, node: NodeContext) -> list[dict[str, Any]]:
        from pyghmi.exceptions import IpmiException  # type: ignore[import-untyped]

        with self._client.command(node, "read the sensors") as cmd:
            try:
                readings = list(cmd.get_sensor_data())
            except IpmiException as exc:
                if "not present" in str(exc):  # an empty SDR repository
                    return []
                raise
        return [{"kind": str(r.type).lower(), "name": r.name, "reading": r.value,
                 "unit": r.units or None, "health": _health(r.health),
                 "upper_critical": None} for r in readings]

    def log_entries(self, node: NodeContext) -> list[dict[str, Any]]:
        with self._client.command(node, "read the SEL") as cmd:
            entries = list(cmd.get_event_log())
        return [{"log": "SEL", "id": str(e.get("record_id")),
                 "time": e.get("timestamp"),
                 "severity": _SEVERITY.get(int(e.get("severity") or 0), "info"),
                 "message": " ".join(str(part) for part in (
                     e.get("component"), e.get("event")) if part),
                 "message_id": e.get("event_id"), "sensor": e.get("component_type"),
                 "entry_type": "SEL"} for e in entries]

    def fru(self, node: NodeContext) -> dict[str, Any]:
        with self._client.command(node, "read the FRU") as cmd:
            return read_fru(cmd)


def _health(value: int) -> str:
    if value == 0:
        return "OK"
    return "Critical" if value & 0x0E else "Warning"  # pyghmi const: 1 warning, 2+ critical


def read_fru(cmd: Any) -> dict[str, Any]:
    """FRU 0 read in small chunks, parsed by pyghmi: board/product manufacturer, serial..."""
    from pyghmi.ipmi import fru  # type: ignore[import-untyped]

    size_answer = check(cmd.raw_command(netfn=0x0A, command=0x10, data=[0]), "FRU info")
    data = size_answer["data"]
    size = int(data[0]) | (int(data[1]) << 8)
    raw = bytearray()
    while len(raw) < size:
        chunk = min(_FRU_CHUNK, size - len(raw))
        answer = check(cmd.raw_command(netfn=0x0A, command=0x11,
                                       data=[0, len(raw) & 0xFF, len(raw) >> 8, chunk]),
                       "FRU read")
        count = int(answer["data"][0])
        if count == 0:
            break
        raw.extend(answer["data"][1:count + 1])
    info = fru.FRU(rawdata=bytes(raw)).info
    keep = ("Board manufacturer", "Board product name", "Board serial number",
            "Board model", "Manufacturer", "Product name", "Model", "Serial Number",
            "Hardware Version", "Asset Number")
    facts = {key: _clean(info.get(key)) for key in keep if info.get(key) not in (None, "")}
    return {"manufacturer": facts.get("Manufacturer") or facts.get("Board manufacturer"),
            "model": facts.get("Product name") or facts.get("Board product name"),
            "serial": facts.get("Serial Number") or facts.get("Board serial number"),
            "fru": facts}


def _clean(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.decode(errors="replace").strip()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value.strip() if isinstance(value, str) else value
