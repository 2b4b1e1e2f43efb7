"""Broken BMCs through the whole stack: each gives a clear bmc_error and an event, never a
crash or a node left reserved, both when verifying a node and in power sync."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.drivers import unsupported
from metalfleet.drivers.base import HardwareType
from metalfleet.drivers.redfish import RedfishBoot, RedfishClient, RedfishManagement, RedfishPower
from metalfleet.runtime import AppContext
from tests.conftest import drive
from tests.integration.drivers.peers import (
    SUSHY_PASSWORD,
    SUSHY_USER,
    SushyEmulator,
    free_port,
    start_sushy_emulator,
)

HTML = b"<html><body>It works!</body></html>"


class RawServer:
    """A TCP server on 127.0.0.1 that answers every request with ``respond(conn)``."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.respond = respond
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(65536)
                self.respond(conn)
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def _reply(status: str, content_type: str, body: bytes) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)

    return respond


def _hang_mid_response(release: threading.Event) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4096\r\n\r\n{\"@odata.id\": \"/redfish/v1\", ")
        release.wait(30)  # ... and the rest never comes

    return respond


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SushyEmulator]:
    running = start_sushy_emulator(tmp_path_factory.mktemp("sushy-faults"), ["good"])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bad_bmcs() -> Iterator[dict[str, str]]:
    release = threading.Event()
    servers = {
        "not-redfish": RawServer(_reply("200 OK", "text/html", HTML)),
        "malformed-json": RawServer(_reply("200 OK", "application/json", b"{\"Id\": [1, ")),
        "hangs": RawServer(_hang_mid_response(release)),
    }
    addresses = {name: f"http://127.0.0.1:{server.port}/redfish/v1/Systems/1"
                 for name, server in servers.items()}
    addresses["unreachable"] = f"http://127.0.0.1:{free_port()}/redfish/v1/Systems/1"
    yield addresses
    release.set()
    for server in servers.values():
        server.stop()


@pytest.fixture
def redfish_client() -> Iterator[RedfishClient]:
    client = RedfishClient(read_timeout=1.0, connect_timeout=1.0, retries=1, retry_delay=0.1)
    yield client
    client.close()


@pytest.fixture
def fault_conductor(context: AppContext, redfish_client: RedfishClient) -> Conductor:
    hw = HardwareType(
        name="redfish", power=RedfishPower(redfish_client), boot=RedfishBoot(redfish_client),
        management=RedfishManagement(redfish_client), inspect=unsupported.NoInBandInspect(),
        burn_in=unsupported.NoInBandBurnIn(), deploy=unsupported.NoInBandDeploy(),
        clean=unsupported.NoInBandClean())
    conductor = Conductor(context.db, context.cipher, name="fault-conductor", workers=8,
                          poll_interval_s=0.02, heartbeat_interval_s=0.5,
                          hardware_types=lambda _: hw)
    sync = conductor.power_sync
    sync.power_for = lambda _name, hardware: hardware.power
    sync.call_timeout_s, sync.retries, sync.backoff_s = 5.0, 1, 0.05
    return conductor


CASES = {  # node -> (BMC, bmc_error kind, words in the message)
    "wrong-password": ("good", "auth_failed", "username and password"),
    "unreachable": ("unreachable", "unreachable", "connection refused"),
    "not-redfish": ("not-redfish", "protocol_error", "not a Redfish service"),
    "hangs": ("hangs", "unreachable", "timed out"),
    "malformed-json": ("malformed-json", "protocol_error", "not JSON"),
}


def enroll_all(client: TestClient, emulator: SushyEmulator,
               bad_bmcs: dict[str, str]) -> None:
    for name, (bmc, _, _) in CASES.items():
        address = emulator.address("good") if bmc == "good" else bad_bmcs[bmc]
        password = "Wr0ng-pw-123" if name == "wrong-password" else SUSHY_PASSWORD
        answer = client.post("/v1/nodes", json={
            "name": name, "hardware_type": "redfish",
            "bmc": {"driver": "redfish", "address": address, "username": SUSHY_USER,
                    "password": password}})
        assert answer.status_code == 201, answer.text


def node_of(client: TestClient, name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/nodes/{name}").json()
    return body


def events_of(client: TestClient, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/v1/nodes/{name}/events").json()["items"]
    return items


def test_verify_fails_cleanly_on_every_broken_bmc(
        client: TestClient, fault_conductor: Conductor, emulator: SushyEmulator,
        bad_bmcs: dict[str, str]) -> None:
    enroll_all(client, emulator, bad_bmcs)
    for name in CASES:
        assert client.post(f"/v1/nodes/{name}/actions/manage").status_code == 202
    drive(fault_conductor, lambda: all(node_of(client, n)["state"] != "verifying"
                                       for n in CASES), timeout=45)
    for name, (_, kind, words) in CASES.items():
        node = node_of(client, name)
        assert node["state"] == "verify-failed", (name, node)
        assert node["reservation"] is None
        assert node["bmc"]["error"].startswith(f"{kind}: "), (name, node["bmc"]["error"])
        assert words in node["bmc"]["error"], (name, node["bmc"]["error"])
        assert node["last_error"]
        last = events_of(client, name)[-1]
        assert last["to_state"] == "verify-failed" and words in last["message"]


def test_power_sync_reports_each_broken_bmc_once(
        client: TestClient, context: AppContext, fault_conductor: Conductor,
        emulator: SushyEmulator, bad_bmcs: dict[str, str]) -> None:
    enroll_all(client, emulator, bad_bmcs)
    with context.db.session() as session:  # as if verified earlier, when the BMCs worked
        session.execute(update(m.Node).values(state="manageable", power_state="off"))
    sync = fault_conductor.power_sync
    first = sync.sweep()
    assert first.nodes == len(CASES) and first.errors == len(CASES)
    assert first.seconds < 30
    for name, (_, kind, words) in CASES.items():
        node = node_of(client, name)
        assert node["bmc"]["error"].startswith(f"{kind}: ") and words in node["bmc"]["error"]
        assert node["reservation"] is None and node["state"] == "manageable"
    sync.sweep()  # the same failures again: no new events
    for name, (_, kind, _) in CASES.items():
        errors = [e for e in events_of(client, name) if e["kind"] == "error"]
        assert len(errors) == 1 and errors[0]["message"].startswith(f"BMC error: {kind}: ")

    # the BMC with the wrong password gets the right one: the error clears, with an event
    patched = client.patch("/v1/nodes/wrong-password", json={"bmc": {
        "driver": "redfish", "address": emulator.address("good"), "username": SUSHY_USER,
        "password": SUSHY_PASSWORD}})
    assert patched.status_code == 200
    with context.db.session() as session:
        session.execute(update(m.Node).where(m.Node.name == "wrong-password")
                        .values(bmc_error="auth_failed: stale"))
    assert sync.sweep().recovered == 1
    assert node_of(client, "wrong-password")["bmc"]["error"] is None
    assert events_of(client, "wrong-password")[-1]["message"].startswith("BMC answers again")
