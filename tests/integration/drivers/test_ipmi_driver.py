"""The ipmi hardware type (pyghmi) against OpenIPMI's ipmi_sim, cross-checked with ipmitool."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metalfleet.conductor.worker import Conductor
from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.drivers.base import BmcCredentials, NodeContext
from metalfleet.drivers.ipmi import IpmiBoot, IpmiClient, IpmiManagement, IpmiPower
from metalfleet.drivers.ipmi.client import (
    classify_ipmi_error,
    default_client,
    parse_ipmi_address,
)
from metalfleet.drivers.registry import get_hardware_type
from tests.conftest import drive
from tests.integration.drivers.peers import (
    IPMI_PASSWORD,
    IpmiSim,
    free_port,
    start_ipmi_sim,
    wait_until,
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpmiSim]:
    running = start_ipmi_sim(tmp_path_factory.mktemp("ipmi"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def ipmi() -> IpmiClient:
    # the conductor's client: pyghmi allows one session object per BMC and process
    return default_client()


def node_for(address: str, password: str = IPMI_PASSWORD, **driver_info: str) -> NodeContext:
    return NodeContext(name="ipmi-1", uuid="i-1", driver_info=dict(driver_info),
                       bmc=BmcCredentials(driver="ipmi", address=address, username="admin",
                                          password=password))


def test_the_ipmi_hardware_type_is_registered() -> None:
    hw = get_hardware_type("ipmi")
    assert isinstance(hw.power, IpmiPower) and isinstance(hw.boot, IpmiBoot)


def test_power_on_off_soft_and_reboot(sim: IpmiSim, ipmi: IpmiClient) -> None:
    node = node_for(sim.address)
    power = IpmiPower(ipmi)
    sim.set_chassis("power", "0")
    assert power.get_power_state(node) is PowerState.OFF
    assert "Chassis Power is off" in sim.ipmitool("power", "status")

    power.set_power_state(node, PowerState.ON)
    wait_until(lambda: power.get_power_state(node) is PowerState.ON, 10, "power on")
    assert sim.chassis("power") == "1"
    assert "Chassis Power is on" in sim.ipmitool("power", "status")

    power.reboot(node)  # on: a reset, the chassis stays on
    assert power.get_power_state(node) is PowerState.ON

    power.set_power_state(node, PowerState.OFF)
    wait_until(lambda: power.get_power_state(node) is PowerState.OFF, 10, "power off")
    assert "Chassis Power is off" in sim.ipmitool("power", "status")
    power.reboot(node)  # off: powers on
    wait_until(lambda: power.get_power_state(node) is PowerState.ON, 10, "reboot from off")

    sim.ipmitool("power", "off")  # a change made outside metalfleet is read back
    wait_until(lambda: power.get_power_state(node) is PowerState.OFF, 10, "ipmitool off")
    with pytest.raises(DriverError) as caught:
        power.set_power_state(node, PowerState.UNKNOWN)
    assert caught.value.extra["kind"] == "invalid_request"


def test_soft_power_off_is_sent(sim: IpmiSim, ipmi: IpmiClient) -> None:
    node = node_for(sim.address)
    sim.set_chassis("power", "1")
    IpmiPower(ipmi).set_power_state(node, PowerState.OFF, soft=True)
    history = (sim.workdir / "chassis" / "history").read_text()
    assert history.splitlines()[-1] == "shutdown 1"  # ipmi_sim's soft-off request


@pytest.mark.parametrize(("device", "selector"), [
    ("pxe", "Force PXE"), ("disk", "Force Boot from default Hard-Drive"),
    ("cd", "Force Boot from CD/DVD")])
def test_boot_device_cross_checked_with_ipmitool(sim: IpmiSim, ipmi: IpmiClient,
                                                 device: str, selector: str) -> None:
    node = node_for(sim.address)
    IpmiBoot(ipmi).set_boot_device(node, device, persistent=device == "disk")
    assert selector in sim.ipmitool("chassis", "bootparam", "get", "5")


def test_http_boot_is_refused_over_ipmi(sim: IpmiSim, ipmi: IpmiClient) -> None:
    with pytest.raises(DriverError) as caught:
        IpmiBoot(ipmi).set_boot_device(node_for(sim.address), "http")
    assert caught.value.extra["kind"] == "unsupported"


def test_validate_reads_the_fru(sim: IpmiSim, ipmi: IpmiClient) -> None:
    facts = IpmiManagement(ipmi).validate(node_for(sim.address))
    assert (facts["manufacturer"], facts["model"], facts["serial"]) == (
        "Supermicro", "SYS-120U-TNR", "S417255X1A12345")
    assert facts["fru"]["Board serial number"] == "WM212S600123"
    fru_text = sim.ipmitool("fru")
    assert "S417255X1A12345" in fru_text and "WM212S600123" in fru_text


def test_sensors_and_sel(sim: IpmiSim, ipmi: IpmiClient) -> None:
    management = IpmiManagement(ipmi)
    node = node_for(sim.address)
    assert management.sensors(node) == [{
        "kind": "temperature", "name": "Inlet Temp", "reading": 38.0, "unit": "°C",
        "health": "OK", "upper_critical": None}]
    assert "Inlet Temp" in sim.ipmitool("sensor", "list")
    before = len(management.log_entries(node))
    with ipmi.command(node, "add a SEL entry") as cmd:  # what the BMC logs on an event
        cmd.raw_command(netfn=0x0A, command=0x44, data=[
            0, 0, 0x02, 0, 0, 0, 0, 0x20, 0x00, 0x04, 0x01, 0x01, 0x01, 0x57, 0, 0])
    entries = management.log_entries(node)
    assert len(entries) == before + 1
    entry = entries[-1]
    assert (entry["log"], entry["sensor"], entry["severity"]) == ("SEL", "Temperature",
                                                                 "warning")
    assert "Inlet Temp" in entry["message"]
    assert "Temperature" in sim.ipmitool("sel", "list")


def test_wrong_password_is_auth_failed_and_never_shown(
        sim: IpmiSim, ipmi: IpmiClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Ipmi-pw"
    with pytest.raises(DriverError) as caught:
        IpmiPower(ipmi).get_power_state(node_for(sim.address, wrong))
    error = caught.value
    assert error.extra["kind"] == "auth_failed"
    assert "username and password" in error.detail
    for text in (str(error), error.detail, repr(error.extra), caplog.text):
        assert wrong not in text and IPMI_PASSWORD not in text


def test_no_bmc_on_the_port_is_unreachable(ipmi: IpmiClient) -> None:
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        IpmiPower(ipmi).get_power_state(node_for(f"ipmi://127.0.0.1:{free_port()}"))
    assert caught.value.extra["kind"] == "unreachable"
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("address", [
    "http://10.0.0.5", "ipmi://", "ipmi://user:pw@10.0.0.5", "ipmi://10.0.0.5/redfish/v1"])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(DriverError) as caught:
        parse_ipmi_address(address)
    assert caught.value.extra["kind"] == "invalid_address"
    assert "pw" not in caught.value.detail or "user:pw" not in caught.value.detail


def test_addresses_and_error_kinds() -> None:
    assert parse_ipmi_address("ipmi://10.0.0.5").port == 623
    assert parse_ipmi_address("ipmi://[fd00::5]:6230").describe() == "ipmi://[fd00::5]:6230"
    assert classify_ipmi_error(Exception("Incorrect password provided")) == "auth_failed"
    assert classify_ipmi_error(Exception("Unauthorized name in RAKP2")) == "auth_failed"
    assert classify_ipmi_error(Exception(None)) == "unreachable"
    assert classify_ipmi_error(Exception("timeout")) == "unreachable"
    assert classify_ipmi_error(Exception("Invalid data field in request")) == "protocol_error"



def test_enroll_manage_power_and_power_sync_through_the_api(
        sim: IpmiSim, client: TestClient, conductor: Conductor) -> None:
    def node() -> dict[str, Any]:
        body: dict[str, Any] = client.get("/v1/nodes/ipmi-api").json()
        return body

    sim.set_chassis("power", "0")
    answer = client.post("/v1/nodes", json={
        "name": "ipmi-api", "hardware_type": "ipmi",
        "bmc": {"driver": "ipmi", "address": sim.address, "username": "admin",
                "password": IPMI_PASSWORD}})
    assert answer.status_code == 201, answer.text
    assert client.post("/v1/nodes/ipmi-api/actions/manage").status_code == 202
    drive(conductor, lambda: node()["state"] != "verifying", timeout=30)
    assert node()["state"] == "manageable", node()["last_error"]
    assert node()["power_state"] == "off"

    assert client.post("/v1/nodes/ipmi-api/actions/power-on").status_code == 202
    drive(conductor, lambda: node()["target_power_state"] is None, timeout=30)
    assert node()["power_state"] == "on" and sim.chassis("power") == "1"
    assert "Chassis Power is on" in sim.ipmitool("power", "status")

    conductor.power_sync.set_interval(0.2)
    sim.ipmitool("power", "off")  # outside metalfleet
    drive(conductor, lambda: node()["power_state"] == "off", timeout=30)
    messages = [e["message"] for e in client.get("/v1/nodes/ipmi-api/events").json()["items"]]
    assert "power changed outside metalfleet: on -> off" in messages
    assert IPMI_PASSWORD not in str(node()) and IPMI_PASSWORD not in str(messages)
