"""Out-of-band Redfish inventory, sensors and logs on vendor-shaped payloads.

The fixtures (tests/fixtures/redfish/*.json, path -> document) follow the shapes Dell iDRAC 9,
HPE iLO 5 and Supermicro X12 BMCs return: Dell's ids with dots and '#', HPE's empty DIMM
slots marked Absent, padded serials, firmware inventory expanded inline and a GPU seen only
as a PCIe device, Supermicro's SimpleStorage and missing Secure Boot/TPM/BIOS (licence) and
firmware inventory; and an 8-GPU server that lists its GPUs both as processors and as PCIe
devices, with the newer Sensors/ThermalSubsystem resources.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from metalfleet.drivers.redfish.inventory import collect_inventory
from metalfleet.drivers.redfish.resources import JSON, Fetch
from metalfleet.drivers.redfish.telemetry import read_log_entries, read_sensors

FIXTURES = Path(__file__).parents[2] / "fixtures" / "redfish"


class Missing(Exception):
    status_code = 404


def load(name: str) -> dict[str, JSON]:
    tree: dict[str, JSON] = json.loads((FIXTURES / f"{name}.json").read_text())
    return tree


def fetcher(tree: dict[str, JSON], seen: list[str] | None = None) -> Fetch:
    def fetch(path: str) -> JSON:
        if seen is not None:
            seen.append(path)
        if path not in tree:
            raise Missing(path)
        return tree[path]

    return fetch


def system_path(tree: dict[str, JSON]) -> str:
    members = tree["/redfish/v1/Systems"]["Members"]
    return str(members[0]["@odata.id"])


def inventory(name: str) -> dict[str, Any]:
    tree = load(name)
    return collect_inventory(fetcher(tree), system_path(tree))


def test_gpu_server_with_eight_gpus_counts_each_gpu_once() -> None:
    inv = inventory("dell_xe9680_8gpu")
    assert inv["errors"] == {}
    assert inv["system"]["manufacturer"] == "Dell Inc."
    assert inv["system"]["model"] == "PowerEdge XE9680"
    gpus = inv["gpus"]
    assert len(gpus) == 8  # listed as processors and as PCIe devices: counted once
    assert {g["name"] for g in gpus} == {"NVIDIA H100 80GB HBM3"}
    assert {g["source"] for g in gpus} == {"processor"}
    assert len({g["serial"] for g in gpus}) == 8
    assert inv["cpu"] == {"model": "Intel(R) Xeon(R) Platinum 8480+", "manufacturer": "Intel",
                          "sockets": 2, "cores": 112, "threads": 224, "max_speed_mhz": 4000,
                          "arch": "x86-64"}
    assert inv["memory"]["total_mib"] == 32 * 65536
    assert {d["kind"] for d in inv["disks"]} == {"nvme"} and len(inv["disks"]) == 8
    assert [n["speed_mbps"] for n in inv["nics"]].count(400000) == 8


def test_dell_r750() -> None:
    inv = inventory("dell_r750")
    assert inv["errors"] == {}
    assert inv["system"]["serial"] == "9R8VN33" and inv["system"]["bios_version"] == "1.10.2"
    assert inv["gpus"] == []
    assert inv["memory"]["total_mib"] == 16 * 32768 and len(inv["memory"]["modules"]) == 16
    assert inv["memory"]["modules"][0]["type"] == "DDR5"
    assert [(d["kind"], d["protocol"], d["size_bytes"]) for d in inv["disks"]] == [
        ("nvme", "NVMe", 3840755982336), ("ssd", "SATA", 480103981056),
        ("hdd", "SAS", 2000398934016)]
    assert inv["storage_controllers"][0]["model"] == "PERC H755 Front"
    assert inv["nics"][0] == {"name": "NIC.Integrated.1-1-1", "mac": "b4:96:91:a1:b2:c0",
                              "speed_mbps": 25000, "link": "LinkUp", "enabled": True}
    assert inv["network_adapters"][0]["firmware"] == "22.31.6"
    assert {f["name"]: f["version"] for f in inv["firmware"]}["BIOS"] == "1.10.2"
    assert inv["bios"]["attributes"]["SysProfile"] == "PerfOptimized"
    assert inv["secure_boot"] == {"enabled": True, "current_boot": "Enabled",
                                  "mode": "DeployedMode"}
    assert inv["tpm"] == [{"interface": "TPM2_0", "firmware": "7.2.2.0", "state": "Enabled",
                           "health": None}]


def test_hpe_dl380_gen10() -> None:
    inv = inventory("hpe_dl380_gen10")
    assert inv["errors"] == {}
    assert inv["system"]["serial"] == "MXQ9170ABC"  # iLO pads it with spaces
    assert len(inv["memory"]["modules"]) == 12  # 24 slots, 12 Absent
    assert inv["memory"]["total_mib"] == 12 * 32768
    assert [g["name"] for g in inv["gpus"]] == ["NVIDIA Tesla T4"]  # a PCIe device only
    assert inv["gpus"][0]["source"] == "pcie"
    assert inv["storage_controllers"][0]["firmware"] == "5.32"  # the newer Controllers link
    assert [d["kind"] for d in inv["disks"]] == ["hdd", "ssd"]
    assert inv["nics"][0]["mac"] == "48:df:37:5a:10:b0"  # dashes normalized
    assert len(inv["firmware"]) == 4  # members expanded inline
    assert inv["secure_boot"]["enabled"] is False
    assert inv["tpm"][0]["interface"] == "TPM2_0"


def test_supermicro_missing_parts_do_not_fail_the_rest() -> None:
    inv = inventory("supermicro_x12")
    assert set(inv["errors"]) == {"firmware", "bios"}
    assert inv["firmware"] == [] and inv["bios"]["attributes"] == {}
    assert inv["bios"]["version"] == "1.4a"
    assert inv["secure_boot"] is None and inv["tpm"] == []
    assert inv["disks"] == [{  # SimpleStorage, the empty slot skipped
        "name": "Micron_5300_MTFDDAK960TDS", "model": "Micron_5300_MTFDDAK960TDS",
        "serial": None, "size_bytes": 960197124096, "kind": None, "protocol": None,
        "media": None, "manufacturer": "Micron", "firmware": None, "controller": "1",
        "health": "OK"}]
    assert inv["cpu"]["cores"] == 16 and inv["memory"]["total_mib"] == 4 * 32768


def test_a_broken_section_is_named_and_the_others_kept() -> None:
    tree = load("dell_r750")
    del tree["/redfish/v1/Systems/System.Embedded.1/Memory"]
    tree["/redfish/v1/Systems/System.Embedded.1/Storage"] = {"Members": "garbage"}
    del tree["/redfish/v1/Chassis/System.Embedded.1"]
    inv = collect_inventory(fetcher(tree), "/redfish/v1/Systems/System.Embedded.1")
    assert inv["errors"] == {"memory": "HTTP 404", "chassis": "HTTP 404"}
    assert inv["memory"] == {"total_mib": None, "modules": []}
    assert inv["disks"] == []  # a collection that is not a list is read as empty
    assert inv["cpu"]["sockets"] == 2 and len(inv["nics"]) == 2


def test_only_the_system_itself_is_required() -> None:
    with pytest.raises(Missing):
        collect_inventory(fetcher({}), "/redfish/v1/Systems/1")


def test_a_bare_system_gives_an_empty_inventory() -> None:
    inv = collect_inventory(fetcher({"/redfish/v1/Systems/1": {"Id": "1"}}),
                            "/redfish/v1/Systems/1")
    assert inv["gpus"] == [] and inv["disks"] == [] and inv["nics"] == []
    assert set(inv["errors"]) == {"firmware"}


@pytest.mark.parametrize(("name", "kinds"), [
    ("dell_r750", {"temperature": 2, "fan": 3, "power": 3, "voltage": 1}),
    ("hpe_dl380_gen10", {"temperature": 2, "fan": 6, "power": 3}),
    ("supermicro_x12", {"temperature": 2, "fan": 4, "power": 1, "voltage": 1}),
    ("dell_xe9680_8gpu", {"temperature": 3, "fan": 6, "power": 1, "voltage": 1}),
])
def test_sensors_from_thermal_power_or_the_sensors_collection(
        name: str, kinds: dict[str, int]) -> None:
    tree = load(name)
    fetch = fetcher(tree)
    readings = read_sensors(fetch, fetch(system_path(tree)))
    counted: dict[str, int] = {}
    for reading in readings:
        counted[reading["kind"]] = counted.get(reading["kind"], 0) + 1
    assert counted == kinds
    assert all(r["health"] in ("OK", None) for r in readings)


def test_sensor_shape() -> None:
    tree = load("dell_xe9680_8gpu")
    fetch = fetcher(tree)
    readings = read_sensors(fetch, fetch(system_path(tree)))
    assert readings[0] == {"kind": "temperature", "name": "SystemBoardInletTemp",
                           "reading": 22.0, "unit": "Cel", "health": "OK",
                           "upper_critical": 47.0}
    fan = next(r for r in readings if r["kind"] == "fan")
    assert (fan["unit"], fan["reading"]) == ("%", 41.0)


def test_log_entries_from_the_sel_and_vendor_logs() -> None:
    tree = load("dell_r750")
    fetch = fetcher(tree)
    entries = read_log_entries(fetch, fetch(system_path(tree)))
    assert [(e["log"], e["id"], e["severity"]) for e in entries] == [
        ("Sel", "1", "warning"), ("Sel", "2", "info"), ("Lclog", "1729", "info")]
    assert entries[0]["message"].startswith("The system inlet temperature is greater")
    assert entries[0]["message_id"] == "TMP0118"
    tree = load("hpe_dl380_gen10")
    fetch = fetcher(tree)
    hpe = read_log_entries(fetch, fetch(system_path(tree)))
    assert [(e["log"], e["severity"]) for e in hpe] == [("IML", "critical"), ("IEL", "info")]


def test_a_log_service_without_entries_is_skipped() -> None:
    tree = load("supermicro_x12")
    del tree["/redfish/v1/Managers/1/LogServices/Log1/Entries"]
    fetch = fetcher(tree)
    assert read_log_entries(fetch, fetch(system_path(tree))) == []
