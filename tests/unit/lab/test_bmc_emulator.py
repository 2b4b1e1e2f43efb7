"""The lab Redfish BMC emulator, through its HTTP app (FastAPI TestClient) and its state."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metalfleet.lab.bmc_emulator import LabBmcEmulator, LabSystem, build_app

AUTH = ("admin", "lab-pass")
DELAY = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def system() -> LabSystem:
    return LabSystem.new("gpu-01", cpus=2, gpus=4, dimm_count=4, dimm_gib=32, nic_count=2,
                         username=AUTH[0], password=AUTH[1])


@pytest.fixture
def emulator(system: LabSystem, clock: FakeClock) -> LabBmcEmulator:
    return LabBmcEmulator([system], power_delay=DELAY, clock=clock)


@pytest.fixture
def client(emulator: LabBmcEmulator) -> TestClient:
    return TestClient(build_app(emulator))


def get(client: TestClient, path: str, auth: tuple[str, str] = AUTH) -> dict[str, Any]:
    response = client.get(path, auth=auth)
    assert response.status_code == 200, response.text
    assert response.headers["OData-Version"] == "4.0"
    body: dict[str, Any] = response.json()
    return body


def system_url(system: LabSystem) -> str:
    return f"/redfish/v1/Systems/{system.id}"


def reset(client: TestClient, system: LabSystem, reset_type: str) -> None:
    response = client.post(f"{system_url(system)}/Actions/ComputerSystem.Reset",
                           json={"ResetType": reset_type}, auth=AUTH)
    assert response.status_code == 204, response.text


def assert_redfish_error(response: Any, status: int, message_id: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"].startswith("Base.")
    info = error["@Message.ExtendedInfo"]
    assert info[0]["MessageId"].endswith(f".{message_id}")
    assert info[0]["Message"]


# -- service root, collections, auth --------------------------------------------------------


def test_service_root_needs_no_auth_and_links_the_collections(client: TestClient) -> None:
    root = client.get("/redfish/v1/").json()
    assert root["@odata.id"] == "/redfish/v1/"
    assert root["@odata.type"].startswith("#ServiceRoot.")
    assert root["RedfishVersion"]
    assert root["UUID"]
    for name in ("Systems", "Managers", "Chassis"):
        assert root[name] == {"@odata.id": f"/redfish/v1/{name}"}
    assert root["Links"]["Sessions"] == {"@odata.id": "/redfish/v1/SessionService/Sessions"}
    assert client.get("/redfish/v1").json()["Id"] == root["Id"]


@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("root", AUTH[1])])
def test_bad_credentials_get_401_with_redfish_error(
    client: TestClient, system: LabSystem, auth: tuple[str, str] | None
) -> None:
    for path in ("/redfish/v1/Systems", system_url(system)):
        response = client.get(path, auth=auth)
        assert_redfish_error(response, 401, "NoValidSession")
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_systems_collection_lists_only_systems_the_credentials_open(
    client: TestClient, emulator: LabBmcEmulator, system: LabSystem
) -> None:
    other = emulator.add_system(LabSystem.new("other", username="ops", password="other-pass"))
    body = get(client, "/redfish/v1/Systems")
    assert body["@odata.type"] == "#ComputerSystemCollection.ComputerSystemCollection"
    assert body["Members"] == [{"@odata.id": system_url(system)}]
    assert body["Members@odata.count"] == 1
    assert client.get(system_url(other), auth=AUTH).status_code == 401
    assert get(client, system_url(other), auth=("ops", "other-pass"))["Name"] == "other"


def test_unknown_system_and_unknown_path_are_redfish_404(client: TestClient) -> None:
    assert_redfish_error(client.get("/redfish/v1/Systems/nope", auth=AUTH), 404,
                         "ResourceNotFound")
    assert_redfish_error(client.get("/redfish/v1/NoSuchThing", auth=AUTH), 404,
                         "ResourceNotFound")


# -- the system and its members ------------------------------------------------------------


def test_system_payload_has_the_schema_shape(client: TestClient, system: LabSystem) -> None:
    body = get(client, system_url(system))
    assert body["@odata.id"] == system_url(system)
    assert body["@odata.type"].startswith("#ComputerSystem.v1_")
    assert (body["Id"], body["UUID"], body["Name"]) == (system.id, system.id, "gpu-01")
    assert body["PowerState"] == "Off"
    assert body["Manufacturer"] == system.manufacturer
    assert body["SerialNumber"] == system.serial and body["SerialNumber"]
    assert body["BiosVersion"] == system.bios_version
    boot = body["Boot"]
    assert boot["BootSourceOverrideTarget"] == "None"
    assert boot["BootSourceOverrideEnabled"] == "Disabled"
    assert boot["BootSourceOverrideMode"] == "UEFI"
    assert set(boot["BootSourceOverrideTarget@Redfish.AllowableValues"]) == {
        "None", "Pxe", "Hdd", "UefiHttp", "Cd"}
    assert body["ProcessorSummary"]["Count"] == 2  # CPUs only, not GPUs
    assert body["ProcessorSummary"]["CoreCount"] == 64
    assert body["MemorySummary"]["TotalSystemMemoryGiB"] == 128
    for name in ("Processors", "EthernetInterfaces", "Memory"):
        assert body[name] == {"@odata.id": f"{system_url(system)}/{name}"}
    action = body["Actions"]["#ComputerSystem.Reset"]
    assert action["target"] == f"{system_url(system)}/Actions/ComputerSystem.Reset"
    assert set(action["ResetType@Redfish.AllowableValues"]) == {
        "On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart"}
    assert body["Links"]["ManagedBy"] == [{"@odata.id": f"/redfish/v1/Managers/{system.id}"}]


def test_processors_include_gpus(client: TestClient, system: LabSystem) -> None:
    collection = get(client, f"{system_url(system)}/Processors")
    assert collection["Members@odata.count"] == 6
    members = [get(client, member["@odata.id"]) for member in collection["Members"]]
    types = [member["ProcessorType"] for member in members]
    assert types.count("CPU") == 2 and types.count("GPU") == 4
    gpu = next(member for member in members if member["ProcessorType"] == "GPU")
    assert gpu["@odata.type"].startswith("#Processor.") and "NVIDIA" in gpu["Model"]
    assert client.get(f"{system_url(system)}/Processors/GPU9", auth=AUTH).status_code == 404


def test_ethernet_interfaces_report_mac_speed_and_link(
    client: TestClient, system: LabSystem
) -> None:
    collection = get(client, f"{system_url(system)}/EthernetInterfaces")
    assert collection["Members@odata.count"] == 2
    nics = [get(client, member["@odata.id"]) for member in collection["Members"]]
    assert [nic["MACAddress"] for nic in nics] == [nic.mac for nic in system.nics]
    assert len({nic["MACAddress"] for nic in nics}) == 2
    assert all(nic["SpeedMbps"] == 100_000 and nic["LinkStatus"] == "LinkUp" for nic in nics)


def test_memory_modules(client: TestClient, system: LabSystem) -> None:
    collection = get(client, f"{system_url(system)}/Memory")
    assert collection["Members@odata.count"] == 4
    dimm = get(client, collection["Members"][0]["@odata.id"])
    assert dimm["CapacityMiB"] == 32 * 1024 and dimm["@odata.type"].startswith("#Memory.")


def test_manager_and_chassis(client: TestClient, system: LabSystem) -> None:
    for kind in ("Managers", "Chassis"):
        collection = get(client, f"/redfish/v1/{kind}")
        assert collection["Members"] == [{"@odata.id": f"/redfish/v1/{kind}/{system.id}"}]
    manager = get(client, f"/redfish/v1/Managers/{system.id}")
    assert manager["ManagerType"] == "BMC"
    assert manager["Links"]["ManagerForServers"] == [{"@odata.id": system_url(system)}]
    chassis = get(client, f"/redfish/v1/Chassis/{system.id}")
    assert chassis["ChassisType"] == "RackMount"
    assert chassis["Links"]["ComputerSystems"] == [{"@odata.id": system_url(system)}]


# -- power -----------------------------------------------------------------------------------


def power(client: TestClient, system: LabSystem) -> str:
    return str(get(client, system_url(system))["PowerState"])


def test_power_on_takes_effect_after_the_delay(
    client: TestClient, system: LabSystem, clock: FakeClock
) -> None:
    reset(client, system, "On")
    assert power(client, system) == "Off"
    clock.advance(DELAY - 0.1)
    assert power(client, system) == "Off"
    clock.advance(0.2)
    assert power(client, system) == "On"
    assert get(client, system_url(system))["Oem"]["MetalfleetLab"]["BootCount"] == 1


def test_redundant_resets_are_accepted_no_ops(
    client: TestClient, emulator: LabBmcEmulator, system: LabSystem, clock: FakeClock
) -> None:
    reset(client, system, "ForceOff")  # already off
    reset(client, system, "GracefulRestart")  # nothing to restart gracefully
    clock.advance(DELAY * 2)
    assert power(client, system) == "Off"
    reset(client, system, "On")
    clock.advance(DELAY * 2)
    reset(client, system, "On")  # already on
    clock.advance(DELAY * 2)
    assert power(client, system) == "On"
    stored = emulator.get(system.id)
    assert stored is not None and stored.boot_count == 1


def test_power_off_cancels_a_pending_power_on(
    client: TestClient, system: LabSystem, clock: FakeClock
) -> None:
    reset(client, system, "On")
    reset(client, system, "ForceOff")
    clock.advance(DELAY * 2)
    assert power(client, system) == "Off"


@pytest.mark.parametrize("off", ["ForceOff", "GracefulShutdown"])
def test_power_off(client: TestClient, system: LabSystem, clock: FakeClock, off: str) -> None:
    reset(client, system, "On")
    clock.advance(DELAY * 2)
    reset(client, system, off)
    assert power(client, system) == "On"
    clock.advance(DELAY * 2)
    assert power(client, system) == "Off"


def test_force_restart_boots_again(
    client: TestClient, emulator: LabBmcEmulator, system: LabSystem, clock: FakeClock
) -> None:
    reset(client, system, "ForceRestart")  # from off: powers on
    clock.advance(DELAY * 2)
    reset(client, system, "ForceRestart")
    clock.advance(DELAY * 2)
    stored = emulator.get(system.id)
    assert stored is not None
    assert (stored.power_state, stored.boot_count) == ("On", 2)


@pytest.mark.parametrize(("body", "message_id"), [
    ({}, "ActionParameterMissing"),
    ({"ResetType": "Nmi"}, "ActionParameterNotSupported"),
])
def test_bad_reset_requests(
    client: TestClient, system: LabSystem, body: dict[str, str], message_id: str
) -> None:
    response = client.post(f"{system_url(system)}/Actions/ComputerSystem.Reset", json=body,
                           auth=AUTH)
    assert_redfish_error(response, 400, message_id)


def test_reset_needs_the_systems_credentials(client: TestClient, system: LabSystem) -> None:
    response = client.post(f"{system_url(system)}/Actions/ComputerSystem.Reset",
                           json={"ResetType": "On"}, auth=("admin", "nope"))
    assert response.status_code == 401


# -- boot override ---------------------------------------------------------------------------


def patch_boot(client: TestClient, system: LabSystem, **boot: str) -> Any:
    return client.patch(system_url(system), json={"Boot": boot}, auth=AUTH)


def test_one_time_boot_override_is_consumed_by_the_next_boot(
    client: TestClient, system: LabSystem, clock: FakeClock
) -> None:
    response = patch_boot(client, system, BootSourceOverrideTarget="Pxe",
                          BootSourceOverrideEnabled="Once")
    assert response.status_code == 204
    boot = get(client, system_url(system))["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"]) == (
        "Pxe", "Once")
    reset(client, system, "On")
    clock.advance(DELAY * 2)
    body = get(client, system_url(system))
    assert body["Boot"]["BootSourceOverrideEnabled"] == "Disabled"
    assert body["Oem"]["MetalfleetLab"]["LastBootTarget"] == "Pxe"


def test_continuous_boot_override_stays(
    client: TestClient, system: LabSystem, clock: FakeClock
) -> None:
    assert patch_boot(client, system, BootSourceOverrideTarget="Hdd",
                      BootSourceOverrideEnabled="Continuous",
                      BootSourceOverrideMode="Legacy").status_code == 204
    reset(client, system, "On")
    clock.advance(DELAY * 2)
    boot = get(client, system_url(system))["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"],
            boot["BootSourceOverrideMode"]) == ("Hdd", "Continuous", "Legacy")


@pytest.mark.parametrize(("body", "message_id"), [
    ({"Boot": {"BootSourceOverrideTarget": "Floppy"}}, "PropertyValueNotInList"),
    ({"Boot": {"BootSourceOverrideEnabled": "Sometimes"}}, "PropertyValueNotInList"),
    ({"Boot": {"BootOrder": ["Pxe"]}}, "PropertyUnknown"),
    ({"PowerState": "On"}, "PropertyNotWritable"),
    ({"Boot": "Pxe"}, "PropertyValueTypeError"),
])
def test_bad_boot_patches_are_refused(
    client: TestClient, system: LabSystem, body: dict[str, Any], message_id: str
) -> None:
    assert_redfish_error(client.patch(system_url(system), json=body, auth=AUTH), 400,
                         message_id)
    assert get(client, system_url(system))["Boot"]["BootSourceOverrideTarget"] == "None"


def test_malformed_json_is_a_redfish_400(client: TestClient, system: LabSystem) -> None:
    response = client.patch(system_url(system), content=b"{not json", auth=AUTH,
                            headers={"Content-Type": "application/json"})
    assert_redfish_error(response, 400, "MalformedJSON")


# -- sessions --------------------------------------------------------------------------------


def test_session_login_use_and_logout(client: TestClient, system: LabSystem) -> None:
    response = client.post("/redfish/v1/SessionService/Sessions",
                           json={"UserName": AUTH[0], "Password": AUTH[1]})
    assert response.status_code == 201
    token, location = response.headers["X-Auth-Token"], response.headers["Location"]
    assert location.startswith("/redfish/v1/SessionService/Sessions/")
    headers = {"X-Auth-Token": token}
    assert client.get(system_url(system), headers=headers).status_code == 200
    assert client.delete(location, headers=headers).status_code == 204
    assert client.get(system_url(system), headers=headers).status_code == 401


def test_session_login_with_a_wrong_password_is_401(client: TestClient) -> None:
    response = client.post("/redfish/v1/SessionService/Sessions",
                           json={"UserName": AUTH[0], "Password": "wrong"})
    assert_redfish_error(response, 401, "NoValidSession")
    assert "X-Auth-Token" not in response.headers


# -- state ----------------------------------------------------------------------------------


def test_state_file_round_trip(tmp_path: Path, system: LabSystem, clock: FakeClock) -> None:
    state_file = tmp_path / "lab" / "bmc.json"
    first = LabBmcEmulator([system], state_file=state_file, power_delay=DELAY, clock=clock)
    first.set_boot_override(system.id, target="Pxe", enabled="Continuous")
    first.reset(system.id, "On")
    clock.advance(DELAY * 2)
    assert first.get(system.id) is not None  # settles the power-on, which is saved
    second_system = first.add_system(LabSystem.new("n2"))
    first.reset(second_system.id, "On")  # still pending when "metalfleet restarts"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert json.loads(state_file.read_text())["version"] == 1

    second = LabBmcEmulator(state_file=state_file, power_delay=DELAY, clock=clock)
    restored = second.get(system.id)
    assert restored is not None
    assert restored == first.get(system.id)
    assert (restored.power_state, restored.boot_target, restored.boot_enabled) == (
        "On", "Pxe", "Continuous")
    assert restored.password == system.password and restored.nics == system.nics
    pending = second.get(second_system.id)
    assert pending is not None and pending.power_state == "Off"
    clock.advance(DELAY * 2)
    settled = second.get(second_system.id)
    assert settled is not None and settled.power_state == "On"
    assert second.remove(second_system.id)
    third = LabBmcEmulator(state_file=state_file, clock=clock)
    assert [s.id for s in third.systems()] == [system.id]


def test_get_returns_copies(emulator: LabBmcEmulator, system: LabSystem) -> None:
    copy = emulator.get(system.id)
    assert copy is not None
    copy.power_state = "On"
    again = emulator.get(system.id)
    assert again is not None and again.power_state == "Off"
    updated = emulator.update(system.id, bios_version="2.0.1")
    assert updated.bios_version == "2.0.1"
    with pytest.raises(AttributeError):
        emulator.update(system.id, no_such_field=1)


def test_password_is_not_in_the_repr(system: LabSystem) -> None:
    assert AUTH[1] not in repr(system)
