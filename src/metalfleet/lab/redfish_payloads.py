"""Redfish documents (DMTF schema shapes) for the lab BMC emulator: pure functions, no I/O."""

from __future__ import annotations

import uuid
from typing import Any

from metalfleet.lab.bmc_model import BOOT_MODES, BOOT_TARGETS, RESET_TYPES, LabSystem

ROOT = "/redfish/v1"
SYSTEMS = f"{ROOT}/Systems"
MANAGERS = f"{ROOT}/Managers"
CHASSIS = f"{ROOT}/Chassis"
SESSION_SERVICE = f"{ROOT}/SessionService"
SESSIONS = f"{SESSION_SERVICE}/Sessions"
REDFISH_VERSION = "1.17.0"
MESSAGE_REGISTRY = "Base.1.16"

Payload = dict[str, Any]
_OK_STATUS = {"State": "Enabled", "Health": "OK"}


def ref(path: str) -> Payload:
    return {"@odata.id": path}


def error_body(message_id: str, message: str, resolution: str = "") -> Payload:
    """A Redfish error response (the ``error`` object with one extended message)."""
    extended: Payload = {
        "@odata.type": "#Message.v1_1_2.Message",
        "MessageId": f"{MESSAGE_REGISTRY}.{message_id}",
        "Message": message,
        "Severity": "Critical",
        "MessageSeverity": "Critical",
    }
    if resolution:
        extended["Resolution"] = resolution
    return {"error": {"code": f"{MESSAGE_REGISTRY}.GeneralError",
                      "message": "A general error has occurred. See ExtendedInfo "
                                 "for more information.",
                      "@Message.ExtendedInfo": [extended]}}


def collection(path: str, type_name: str, name: str, member_paths: list[str]) -> Payload:
    return {
        "@odata.id": path,
        "@odata.type": f"#{type_name}.{type_name}",
        "Name": name,
        "Members": [ref(member) for member in member_paths],
        "Members@odata.count": len(member_paths),
    }


def service_root(service_uuid: str) -> Payload:
    return {
        "@odata.id": f"{ROOT}/",
        "@odata.type": "#ServiceRoot.v1_16_0.ServiceRoot",
        "Id": "RootService",
        "Name": "Metalfleet lab Redfish service",
        "RedfishVersion": REDFISH_VERSION,
        "UUID": service_uuid,
        "Product": "metalfleet lab BMC emulator",
        "Vendor": "Metalfleet",
        "Systems": ref(SYSTEMS),
        "Managers": ref(MANAGERS),
        "Chassis": ref(CHASSIS),
        "SessionService": ref(SESSION_SERVICE),
        "Links": {"Sessions": ref(SESSIONS)},
    }


def system_path(system: LabSystem) -> str:
    return f"{SYSTEMS}/{system.id}"


def computer_system(system: LabSystem) -> Payload:
    path = system_path(system)
    cpus = [cpu for cpu in system.processors if cpu.get("ProcessorType", "CPU") == "CPU"]
    cores = sum(int(cpu.get("TotalCores", 0)) for cpu in cpus)
    threads = sum(int(cpu.get("TotalThreads", cpu.get("TotalCores", 0))) for cpu in cpus)
    return {
        "@odata.id": path,
        "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "Id": system.id,
        "Name": system.name,
        "UUID": system.id,
        "SystemType": "Physical",
        "Manufacturer": system.manufacturer,
        "Model": system.model,
        "SerialNumber": system.serial,
        "BiosVersion": system.bios_version,
        "PowerState": system.power_state,
        "Status": dict(_OK_STATUS),
        "Boot": {
            "BootSourceOverrideTarget": system.boot_target or "None",
            "BootSourceOverrideTarget@Redfish.AllowableValues": list(BOOT_TARGETS),
            "BootSourceOverrideEnabled": system.boot_enabled,
            "BootSourceOverrideMode": system.boot_mode,
            "BootSourceOverrideMode@Redfish.AllowableValues": list(BOOT_MODES),
        },
        "ProcessorSummary": {
            "Count": len(cpus),
            "CoreCount": cores,
            "LogicalProcessorCount": threads,
            "Model": cpus[0].get("Model", "") if cpus else "",
            "Status": dict(_OK_STATUS),
        },
        "MemorySummary": {"TotalSystemMemoryGiB": system.memory_gib,
                          "Status": dict(_OK_STATUS)},
        "Processors": ref(f"{path}/Processors"),
        "EthernetInterfaces": ref(f"{path}/EthernetInterfaces"),
        "Memory": ref(f"{path}/Memory"),
        "Links": {"Chassis": [ref(f"{CHASSIS}/{system.id}")],
                  "ManagedBy": [ref(f"{MANAGERS}/{system.id}")]},
        "Actions": {"#ComputerSystem.Reset": {
            "target": f"{path}/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": list(RESET_TYPES),
        }},
        "Oem": {"MetalfleetLab": {"BootCount": system.boot_count,
                                  "LastBootTarget": system.last_boot_target}},
    }


def processor_ids(system: LabSystem) -> list[str]:
    counters: dict[str, int] = {}
    ids = []
    for processor in system.processors:
        kind = str(processor.get("ProcessorType", "CPU"))
        counters[kind] = counters.get(kind, 0) + 1
        ids.append(f"{kind}{counters[kind]}")
    return ids


def processors(system: LabSystem) -> Payload:
    path = f"{system_path(system)}/Processors"
    members = [f"{path}/{member}" for member in processor_ids(system)]
    return collection(path, "ProcessorCollection", "Processors Collection", members)


def processor(system: LabSystem, processor_id: str) -> Payload | None:
    ids = processor_ids(system)
    if processor_id not in ids:
        return None
    index = ids.index(processor_id)
    details = system.processors[index]
    return {
        "@odata.id": f"{system_path(system)}/Processors/{processor_id}",
        "@odata.type": "#Processor.v1_18_0.Processor",
        "Id": processor_id,
        "Name": f"{details.get('ProcessorType', 'CPU')} {processor_id}",
        "Socket": f"{details.get('ProcessorType', 'CPU')} {index}",
        "ProcessorType": "CPU",
        "Status": dict(_OK_STATUS),
        **details,
    }


def ethernet_interfaces(system: LabSystem) -> Payload:
    path = f"{system_path(system)}/EthernetInterfaces"
    members = [f"{path}/NIC{index + 1}" for index in range(len(system.nics))]
    return collection(path, "EthernetInterfaceCollection", "Ethernet Interface Collection",
                      members)


def ethernet_interface(system: LabSystem, nic_id: str) -> Payload | None:
    index = _index_of(nic_id, "NIC", len(system.nics))
    if index is None:
        return None
    nic = system.nics[index]
    return {
        "@odata.id": f"{system_path(system)}/EthernetInterfaces/{nic_id}",
        "@odata.type": "#EthernetInterface.v1_9_0.EthernetInterface",
        "Id": nic_id,
        "Name": f"Ethernet interface {index + 1}",
        "MACAddress": nic.mac,
        "PermanentMACAddress": nic.mac,
        "SpeedMbps": nic.speed_mbps,
        "LinkStatus": "LinkUp" if nic.link_up else "LinkDown",
        "InterfaceEnabled": True,
        "Status": dict(_OK_STATUS),
    }


def memory_collection(system: LabSystem) -> Payload:
    path = f"{system_path(system)}/Memory"
    members = [f"{path}/DIMM{index + 1}" for index in range(len(system.dimms))]
    return collection(path, "MemoryCollection", "Memory Module Collection", members)


def memory(system: LabSystem, dimm_id: str) -> Payload | None:
    index = _index_of(dimm_id, "DIMM", len(system.dimms))
    if index is None:
        return None
    return {
        "@odata.id": f"{system_path(system)}/Memory/{dimm_id}",
        "@odata.type": "#Memory.v1_17_0.Memory",
        "Id": dimm_id,
        "Name": f"DIMM {index + 1}",
        "MemoryType": "DRAM",
        "DeviceLocator": f"DIMM{index + 1}",
        "Status": dict(_OK_STATUS),
        **system.dimms[index],
    }


def manager(system: LabSystem) -> Payload:
    return {
        "@odata.id": f"{MANAGERS}/{system.id}",
        "@odata.type": "#Manager.v1_17_0.Manager",
        "Id": system.id,
        "Name": f"BMC of {system.name}",
        "ManagerType": "BMC",
        "UUID": str(uuid.uuid5(uuid.UUID(system.id), "manager")) if _is_uuid(system.id)
        else system.id,
        "Model": "Metalfleet lab BMC",
        "FirmwareVersion": "1.0.0",
        "PowerState": "On",
        "Status": dict(_OK_STATUS),
        "LogServices": ref(f"{MANAGERS}/{system.id}/LogServices"),
        "Links": {"ManagerForServers": [ref(system_path(system))],
                  "ManagerForChassis": [ref(f"{CHASSIS}/{system.id}")]},
    }


def chassis(system: LabSystem) -> Payload:
    return {
        "@odata.id": f"{CHASSIS}/{system.id}",
        "@odata.type": "#Chassis.v1_23_0.Chassis",
        "Id": system.id,
        "Name": f"Chassis of {system.name}",
        "ChassisType": "RackMount",
        "Manufacturer": system.manufacturer,
        "Model": system.model,
        "SerialNumber": system.serial,
        "PowerState": system.power_state,
        "Status": {"State": "Enabled", "Health": _worst(s["health"] for s in system.sensors)},
        "Thermal": ref(f"{CHASSIS}/{system.id}/Thermal"),
        "Links": {"ComputerSystems": [ref(system_path(system))],
                  "ManagedBy": [ref(f"{MANAGERS}/{system.id}")]},
    }


_HEALTH_ORDER = ("OK", "Warning", "Critical")


def _worst(healths: Any) -> str:
    return max(healths, key=_HEALTH_ORDER.index, default="OK")


def thermal(system: LabSystem) -> Payload:
    """The classic ``Thermal`` resource: what iDRAC 9, iLO 5 and Supermicro BMCs serve."""
    path = f"{CHASSIS}/{system.id}/Thermal"
    fans: list[Payload] = []
    temps: list[Payload] = []
    for index, sensor in enumerate(system.sensors):
        status = {"State": "Enabled", "Health": sensor["health"]}
        if sensor["kind"] == "fan":
            fans.append({"@odata.id": f"{path}#/Fans/{len(fans)}", "MemberId": str(index),
                         "Name": sensor["name"], "Reading": sensor["reading"],
                         "ReadingUnits": "RPM", "Status": status})
        else:
            temps.append({"@odata.id": f"{path}#/Temperatures/{len(temps)}",
                          "MemberId": str(index), "Name": sensor["name"],
                          "ReadingCelsius": sensor["reading"],
                          "UpperThresholdCritical": sensor.get("upper_critical"),
                          "Status": status})
    return {"@odata.id": path, "@odata.type": "#Thermal.v1_7_0.Thermal", "Id": "Thermal",
            "Name": "Thermal", "Fans": fans, "Temperatures": temps}


def log_services(system: LabSystem) -> Payload:
    path = f"{MANAGERS}/{system.id}/LogServices"
    return collection(path, "LogServiceCollection", "Log Service Collection", [f"{path}/SEL"])


def log_service(system: LabSystem) -> Payload:
    path = f"{MANAGERS}/{system.id}/LogServices/SEL"
    return {"@odata.id": path, "@odata.type": "#LogService.v1_3_0.LogService", "Id": "SEL",
            "Name": "System Event Log", "MaxNumberOfRecords": 500, "OverWritePolicy":
            "WrapsWhenFull", "ServiceEnabled": True, "Status": dict(_OK_STATUS),
            "Entries": ref(f"{path}/Entries")}


def log_entries(system: LabSystem) -> Payload:
    """The SEL, oldest first, entries expanded inline (as most BMCs answer ``$expand``)."""
    path = f"{MANAGERS}/{system.id}/LogServices/SEL/Entries"
    members = [{"@odata.id": f"{path}/{entry['Id']}", "@odata.type": "#LogEntry.v1_11_0.LogEntry",
                "Name": "Log Entry", **entry} for entry in system.log]
    return {"@odata.id": path, "@odata.type": "#LogEntryCollection.LogEntryCollection",
            "Name": "System Event Log Entries", "Members": members,
            "Members@odata.count": len(members)}


def session_service() -> Payload:
    return {
        "@odata.id": SESSION_SERVICE,
        "@odata.type": "#SessionService.v1_1_9.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": True,
        "SessionTimeout": 1800,
        "Status": dict(_OK_STATUS),
        "Sessions": ref(SESSIONS),
    }


def session(session_id: str, username: str) -> Payload:
    return {
        "@odata.id": f"{SESSIONS}/{session_id}",
        "@odata.type": "#Session.v1_7_0.Session",
        "Id": session_id,
        "Name": "User Session",
        "UserName": username,
    }


def _index_of(member_id: str, prefix: str, count: int) -> int | None:
    suffix = member_id.removeprefix(prefix)
    if suffix == member_id or not suffix.isdigit():
        return None
    index = int(suffix) - 1
    return index if 0 <= index < count else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
