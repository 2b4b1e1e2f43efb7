"""The redfish hardware type end to end against sushy-tools' emulator (a real Redfish peer).

The emulator's fake driver applies a power change after a random 1-11 s, so the tests that
change power poll with deadlines and are marked slow; enrolling, verifying, boot device and
inventory are quick.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metalfleet.conductor.worker import Conductor
from metalfleet.drivers.base import BmcCredentials, NodeContext
from metalfleet.drivers.redfish import RedfishBoot, RedfishClient
from metalfleet.drivers.redfish.inventory import RedfishInspect
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.drivers.peers import (
    SUSHY_PASSWORD,
    SUSHY_USER,
    SushyEmulator,
    start_sushy_emulator,
    wait_until,
)

NAMES = ["sushy-a", "sushy-b", "sushy-c", "sushy-d"]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SushyEmulator]:
    running = start_sushy_emulator(tmp_path_factory.mktemp("sushy"), NAMES)
    yield running
    running.stop()


def enroll(client: TestClient, emulator: SushyEmulator, name: str,
           password: str = SUSHY_PASSWORD) -> dict[str, Any]:
    answer = client.post("/v1/nodes", json={
        "name": name, "hardware_type": "redfish",
        "bmc": {"driver": "redfish", "address": emulator.address(name),
                "username": SUSHY_USER, "password": password, "verify_tls": False}})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def get_node(client: TestClient, name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/nodes/{name}").json()
    return body


def events_of(client: TestClient, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/v1/nodes/{name}/events",
                                             params={"limit": 500}).json()["items"]
    return items


def manage(client: TestClient, conductor: Conductor, name: str) -> dict[str, Any]:
    assert client.post(f"/v1/nodes/{name}/actions/manage").status_code == 202
    drive(conductor, lambda: get_node(client, name)["state"] != "verifying", timeout=30)
    return get_node(client, name)


def settle_power(emulator: SushyEmulator, name: str, state: str) -> None:
    """Bring the emulated server to ``state`` before a test (its changes are delayed)."""
    if emulator.system(name)["PowerState"] != state:
        emulator.reset(name, "On" if state == "On" else "ForceOff")
        wait_until(lambda: emulator.system(name)["PowerState"] == state, 20,
                   f"emulator {name} {state}", interval=0.25)


def test_enroll_verify_boot_device_and_inventory(client: TestClient, conductor: Conductor,
                                                 emulator: SushyEmulator) -> None:
    enroll(client, emulator, "sushy-a")
    node = manage(client, conductor, "sushy-a")
    assert node["state"] == "manageable", node["last_error"]
    assert node["bmc"]["error"] is None
    assert node["power_state"] in ("on", "off")
    assert "password" not in node["bmc"]

    ctx = NodeContext(name="sushy-a", uuid="x", bmc=BmcCredentials(
        driver="redfish", address=emulator.address("sushy-a"), username=SUSHY_USER,
        password=SUSHY_PASSWORD, verify_tls=False))
    redfish = RedfishClient(read_timeout=5, connect_timeout=2, retries=1)
    try:
        RedfishBoot(redfish).set_boot_device(ctx, "pxe", persistent=True)
        boot = emulator.system("sushy-a")["Boot"]
        assert isinstance(boot, dict) and boot["BootSourceOverrideTarget"] == "Pxe"
        assert RedfishBoot(redfish).get_boot_device(ctx) == "pxe"

        inventory = RedfishInspect(redfish).inspect(ctx)
    finally:
        redfish.close()
    assert inventory["source"] == "redfish"
    assert inventory["system"]["uuid"] == emulator.systems["sushy-a"]
    assert [nic["mac"] for nic in inventory["nics"]] == ["52:54:00:aa:00:00"]
    assert inventory["secure_boot"] is not None
    # the fake driver has no memory or storage resources: named, and the rest kept
    assert {"memory", "storage"} <= set(inventory["errors"])


@pytest.mark.slow
def test_power_on_off_through_the_api(client: TestClient, conductor: Conductor,
                                      emulator: SushyEmulator) -> None:
    settle_power(emulator, "sushy-b", "Off")
    enroll(client, emulator, "sushy-b")
    assert manage(client, conductor, "sushy-b")["state"] == "manageable"
    for action, state in (("power-on", "on"), ("power-off", "off")):
        assert client.post(f"/v1/nodes/sushy-b/actions/{action}").status_code == 202
        drive(conductor, lambda: get_node(client, "sushy-b")["target_power_state"] is None,
              timeout=60)
        node = get_node(client, "sushy-b")
        assert node["power_state"] == state and node["bmc"]["error"] is None
        assert emulator.system("sushy-b")["PowerState"] == state.capitalize()
        assert node["reservation"] is None


@pytest.mark.slow
def test_inspect_reads_the_bmc_inventory(client: TestClient, conductor: Conductor,
                                         emulator: SushyEmulator) -> None:
    settle_power(emulator, "sushy-c", "Off")
    enroll(client, emulator, "sushy-c")
    assert manage(client, conductor, "sushy-c")["state"] == "manageable"
    assert client.post("/v1/nodes/sushy-c/actions/inspect").status_code == 202
    drive(conductor, lambda: get_node(client, "sushy-c")["state"] != "inspecting", timeout=90)
    node = get_node(client, "sushy-c")
    assert node["state"] == "inspected", node["last_error"]
    assert node["inventory"]["nics"][0]["mac"] == "52:54:00:aa:00:02"
    assert node["inventory"]["system"]["manufacturer"] == "Sushy Emulator"


@pytest.mark.slow
def test_power_changed_on_the_emulator_shows_up_as_an_event(
        client: TestClient, conductor: Conductor, emulator: SushyEmulator) -> None:
    settle_power(emulator, "sushy-d", "Off")
    enroll(client, emulator, "sushy-d")
    assert manage(client, conductor, "sushy-d")["state"] == "manageable"
    assert get_node(client, "sushy-d")["power_state"] == "off"
    conductor.power_sync.set_interval(0.5)
    emulator.reset("sushy-d", "On")  # someone powers the server on from the BMC's own UI
    started = time.monotonic()
    drive(conductor, lambda: get_node(client, "sushy-d")["power_state"] == "on", timeout=30)
    assert time.monotonic() - started < 30
    messages = [e["message"] for e in events_of(client, "sushy-d")]
    assert "power changed outside metalfleet: off -> on" in messages
    settle_power(emulator, "sushy-d", "Off")


def test_no_password_in_api_events_logs_or_database(
        client: TestClient, conductor: Conductor, emulator: SushyEmulator,
        context: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    wrong = "Wr0ng-Sushy-pw"
    enroll(client, emulator, "sushy-a", password=wrong)
    failed = manage(client, conductor, "sushy-a")
    assert failed["state"] == "verify-failed"
    assert failed["bmc"]["error"].startswith("auth_failed: ")
    patched = client.patch("/v1/nodes/sushy-a", json={"bmc": {
        "driver": "redfish", "address": emulator.address("sushy-a"), "username": SUSHY_USER,
        "password": SUSHY_PASSWORD, "verify_tls": False}})
    assert patched.status_code == 200, patched.text
    assert client.post("/v1/nodes/sushy-a/actions/manage").status_code == 202
    drive(conductor, lambda: get_node(client, "sushy-a")["state"] == "manageable", timeout=30)
    conductor.power_sync.sweep()
    texts = [json.dumps(get_node(client, "sushy-a")),
             json.dumps(client.get("/v1/nodes").json()),
             json.dumps(events_of(client, "sushy-a")), caplog.text]
    for text in texts:
        assert SUSHY_PASSWORD not in text and wrong not in text
    url = context.settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        db_file = Path(url.removeprefix("sqlite:///"))
        context.db.dispose()  # checkpoint the WAL into the file
        for path in (db_file, db_file.with_name(db_file.name + "-wal")):
            if path.exists():
                data = path.read_bytes()
                assert SUSHY_PASSWORD.encode() not in data and wrong.encode() not in data
