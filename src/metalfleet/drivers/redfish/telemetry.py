"""Sensors and log entries over Redfish, normalized to one small shape per reading/entry.

Sensors come from the chassis: the classic ``Thermal`` and ``Power`` resources (iDRAC 9,
iLO 5, Supermicro X11/X12) or the newer ``Sensors`` collection / ``ThermalSubsystem``
(iLO 6, iDRAC with recent firmware, OpenBMC). Log entries come from the manager's and the
system's ``LogServices`` (the SEL, iDRAC's Lifecycle log, iLO's IML). Each reader skips a
source the BMC lacks and keeps the others.
"""

from __future__ import annotations

from typing import Any

from metalfleet.drivers.redfish.resources import (
    JSON,
    Fetch,
    absent,
    link,
    links,
    members,
    number,
    status,
    text,
)

_SENSOR_KINDS = {"Temperature": "temperature", "Rotational": "fan", "Power": "power",
                 "Voltage": "voltage", "Current": "current", "EnergykWh": "energy"}
_UNITS = {"temperature": "Cel", "fan": "RPM", "power": "W", "voltage": "V", "current": "A"}
_LOG_SEVERITY = {"OK": "info", "Warning": "warning", "Critical": "critical"}


def _sensor(kind: str, name: str | None, reading: float | None, unit: str | None,
            doc: JSON, upper_critical: float | None = None) -> dict[str, Any]:
    return {"kind": kind, "name": name, "reading": reading, "unit": unit or _UNITS.get(kind),
            "health": status(doc)[1], "upper_critical": upper_critical}


def _classic(fetch: Fetch, chassis: JSON) -> list[dict[str, Any]]:
    readings: list[dict[str, Any]] = []
    thermal_path = link(chassis, "Thermal")
    if thermal_path:
        thermal = fetch(thermal_path)
        for temp in thermal.get("Temperatures") or []:
            if isinstance(temp, dict) and not absent(temp):
                readings.append(_sensor("temperature", text(temp, "Name"),
                                        number(temp, "ReadingCelsius"), "Cel", temp,
                                        number(temp, "UpperThresholdCritical")))
        for fan in thermal.get("Fans") or []:
            if isinstance(fan, dict) and not absent(fan):
                unit = text(fan, "ReadingUnits")
                readings.append(_sensor("fan", text(fan, "Name", "FanName"),
                                        number(fan, "Reading"),
                                        "%" if unit == "Percent" else unit, fan))
    power_path = link(chassis, "Power")
    if power_path:
        power = fetch(power_path)
        for control in power.get("PowerControl") or []:
            if isinstance(control, dict):
                readings.append(_sensor("power", text(control, "Name") or "System",
                                        number(control, "PowerConsumedWatts"), "W", control))
        for psu in power.get("PowerSupplies") or []:
            if isinstance(psu, dict) and not absent(psu):
                readings.append(_sensor("power", text(psu, "Name"),
                                        number(psu, "PowerInputWatts", "LastPowerOutputWatts"),
                                        "W", psu))
        for volt in power.get("Voltages") or []:
            if isinstance(volt, dict) and not absent(volt):
                readings.append(_sensor("voltage", text(volt, "Name"),
                                        number(volt, "ReadingVolts"), "V", volt,
                                        number(volt, "UpperThresholdCritical")))
    return readings


def _modern(fetch: Fetch, chassis: JSON) -> list[dict[str, Any]]:
    readings: list[dict[str, Any]] = []
    for sensor in members(fetch, link(chassis, "Sensors")):
        if absent(sensor):
            continue
        kind = _SENSOR_KINDS.get(text(sensor, "ReadingType") or "", "other")
        thresholds = sensor.get("Thresholds")
        critical = None
        if isinstance(thresholds, dict) and isinstance(thresholds.get("UpperCritical"), dict):
            critical = number(thresholds["UpperCritical"], "Reading")
        readings.append(_sensor(kind, text(sensor, "Name", "Id"), number(sensor, "Reading"),
                                text(sensor, "ReadingUnits"), sensor, critical))
    if not any(r["kind"] == "fan" for r in readings):
        subsystem_path = link(chassis, "ThermalSubsystem")
        if subsystem_path:
            subsystem = fetch(subsystem_path)
            for fan in members(fetch, link(subsystem, "Fans")):
                speed = fan.get("SpeedPercent")
                reading = number(speed, "Reading") if isinstance(speed, dict) else None
                readings.append(_sensor("fan", text(fan, "Name", "Id"), reading, "%", fan))
    return readings


def read_sensors(fetch: Fetch, system: JSON) -> list[dict[str, Any]]:
    """Temperatures, fans, power and voltages of the system's chassis (new schema first)."""
    readings: list[dict[str, Any]] = []
    for chassis_path in links(system, "Links", "Chassis")[:4]:
        chassis = fetch(chassis_path)
        found = _modern(fetch, chassis) if link(chassis, "Sensors") else []
        readings += found or _classic(fetch, chassis)
    return readings


def _entry(service_id: str | None, entry: JSON) -> dict[str, Any]:
    severity = text(entry, "Severity") or "OK"
    return {
        "log": service_id,
        "id": text(entry, "Id"),
        "time": text(entry, "Created", "EventTimestamp"),
        "severity": _LOG_SEVERITY.get(severity, severity.lower()),
        "message": text(entry, "Message", "Name") or "",
        "message_id": text(entry, "MessageId"),
        "sensor": text(entry, "SensorType"),
        "entry_type": text(entry, "EntryType"),
    }


def read_log_entries(fetch: Fetch, system: JSON, *, limit: int = 200) -> list[dict[str, Any]]:
    """Entries of the manager's and the system's log services (SEL, Lifecycle, IML), newest
    ``limit`` of each service; a service that fails is skipped."""
    owners = [system] + [fetch(path) for path in links(system, "Links", "ManagedBy")[:2]]
    entries: list[dict[str, Any]] = []
    for owner in owners:
        for service in members(fetch, link(owner, "LogServices")):
            try:
                collection = fetch(link(service, "Entries") or "")
            except Exception:
                continue
            raw = [m for m in collection.get("Members") or [] if isinstance(m, dict)]
            for item in raw[-limit:]:
                doc = item if "Id" in item else fetch(str(item.get("@odata.id")))
                entries.append(_entry(text(service, "Id"), doc))
    return entries
