"""The sushy-based redfish driver against the lab BMC emulator served over real HTTP."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.drivers.base import BmcCredentials, NodeContext
from metalfleet.drivers.redfish import (
    RedfishBoot,
    RedfishClient,
    RedfishManagement,
    RedfishPower,
)
from metalfleet.lab.bmc_emulator import BmcServer, LabBmcEmulator, LabSystem, start_bmc_server

PASSWORD = "Lab-S3cret-pw"
WRONG_PASSWORD = "Wr0ng-S3cret-pw"
POWER_DELAY = 0.2


@pytest.fixture(scope="module")
def emulator() -> LabBmcEmulator:
    return LabBmcEmulator(power_delay=POWER_DELAY)


@pytest.fixture(scope="module")
def server(emulator: LabBmcEmulator) -> Iterator[BmcServer]:
    running = start_bmc_server(emulator)
    yield running
    running.stop()


@pytest.fixture
def client() -> Iterator[RedfishClient]:
    redfish = RedfishClient(read_timeout=2.0, connect_timeout=1.0, retries=1, retry_delay=0.1)
    yield redfish
    redfish.close()


@pytest.fixture
def system(emulator: LabBmcEmulator) -> LabSystem:
    return emulator.add_system(LabSystem.new("node-1", gpus=2, password=PASSWORD))


def node_for(address: str, password: str = PASSWORD, *, verify_tls: bool = True,
             **driver_info: str) -> NodeContext:
    bmc = BmcCredentials(driver="redfish", address=address, username="admin",
                         password=password, verify_tls=verify_tls)
    return NodeContext(name="node-1", uuid="n-1", bmc=bmc, driver_info=dict(driver_info))


@pytest.fixture
def node(server: BmcServer, system: LabSystem) -> NodeContext:
    return node_for(server.system_address(system.id))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def assert_no_secret(error: DriverError, *secrets: str) -> None:
    for text in (str(error), error.detail, repr(error.extra)):
        for secret in secrets:
            assert secret not in text


def test_server_listens_on_loopback_on_a_free_port(server: BmcServer, system: LabSystem) -> None:
    assert server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.system_address(system.id) == (
        f"http://127.0.0.1:{server.port}/redfish/v1/Systems/{system.id}")


@pytest.mark.parametrize("auth_type", ["auto", "basic", "session"])
def test_validate_reads_the_system(client: RedfishClient, server: BmcServer, system: LabSystem,
                                   auth_type: str) -> None:
    node = node_for(server.system_address(system.id), redfish_auth_type=auth_type)
    facts = RedfishManagement(client).validate(node)
    assert facts == {"manufacturer": system.manufacturer, "model": system.model,
                     "serial": system.serial, "bios_version": system.bios_version,
                     "power_state": PowerState.OFF, "uuid": system.id}


def test_power_on_off_and_reboot(client: RedfishClient, node: NodeContext,
                                 emulator: LabBmcEmulator, system: LabSystem,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    real_reset = emulator.reset

    def spy(system_id: str, reset_type: str) -> None:
        sent.append(reset_type)
        real_reset(system_id, reset_type)

    monkeypatch.setattr(emulator, "reset", spy)
    power = RedfishPower(client)
    assert power.get_power_state(node) == PowerState.OFF

    power.set_power_state(node, PowerState.ON)
    wait_for(lambda: power.get_power_state(node) == PowerState.ON)
    power.set_power_state(node, PowerState.ON)  # already on: nothing sent

    power.set_power_state(node, PowerState.OFF, soft=True)
    wait_for(lambda: power.get_power_state(node) == PowerState.OFF)
    power.reboot(node)  # off: powers on
    wait_for(lambda: power.get_power_state(node) == PowerState.ON)
    power.reboot(node)  # on: restarts
    wait_for(lambda: (emulator.get(system.id) or system).boot_count == 3)
    power.set_power_state(node, PowerState.OFF)
    wait_for(lambda: power.get_power_state(node) == PowerState.OFF)
    assert sent == ["On", "GracefulShutdown", "On", "ForceRestart", "ForceOff"]


def test_boot_device_once_and_persistent(client: RedfishClient, node: NodeContext,
                                         emulator: LabBmcEmulator, system: LabSystem) -> None:
    boot, power = RedfishBoot(client), RedfishPower(client)
    assert boot.get_boot_device(node) is None
    for device, redfish_name in (("http", "UefiHttp"), ("cd", "Cd"), ("pxe", "Pxe")):
        boot.set_boot_device(node, device)
        assert boot.get_boot_device(node) == device
        stored = emulator.get(system.id)
        assert stored is not None
        assert (stored.boot_target, stored.boot_enabled) == (redfish_name, "Once")

    power.set_power_state(node, PowerState.ON)  # the one-time override is used up
    wait_for(lambda: power.get_power_state(node) == PowerState.ON)
    assert boot.get_boot_device(node) is None
    assert (emulator.get(system.id) or system).last_boot_target == "Pxe"

    boot.set_boot_device(node, "disk", persistent=True)
    power.reboot(node)
    wait_for(lambda: (emulator.get(system.id) or system).boot_count == 2)
    assert boot.get_boot_device(node) == "disk"
    stored = emulator.get(system.id)
    assert stored is not None and stored.boot_enabled == "Continuous"


def test_boot_mode_from_driver_info(client: RedfishClient, node: NodeContext,
                                    emulator: LabBmcEmulator, system: LabSystem) -> None:
    boot = RedfishBoot(client)
    for wanted, redfish_mode in (("bios", "Legacy"), ("uefi", "UEFI")):
        node.driver_info["boot_mode"] = wanted
        boot.set_boot_device(node, "pxe")
        stored = emulator.get(system.id)
        assert stored is not None and stored.boot_mode == redfish_mode
    node.driver_info["boot_mode"] = "coreboot"
    with pytest.raises(DriverError, match="not uefi or bios"):
        boot.set_boot_device(node, "pxe")


def test_unknown_boot_device_is_refused(client: RedfishClient, node: NodeContext) -> None:
    with pytest.raises(DriverError) as caught:
        RedfishBoot(client).set_boot_device(node, "floppy")
    assert caught.value.extra["kind"] == "invalid_request"


def test_connections_are_cached(client: RedfishClient, server: BmcServer, node: NodeContext,
                                system: LabSystem) -> None:
    for _ in range(3):
        RedfishPower(client).get_power_state(node)
    assert len(server.app.state.sessions.of_user("admin", PASSWORD)) == 1
    server.app.state.sessions.clear()  # the BMC forgets its sessions: sushy logs in again
    assert RedfishPower(client).get_power_state(node) == PowerState.OFF
    assert len(server.app.state.sessions.of_user("admin", PASSWORD)) == 1
    client.close()  # logs out
    assert server.app.state.sessions.of_user("admin", PASSWORD) == []


@pytest.mark.parametrize("auth_type", ["auto", "basic", "session"])
def test_wrong_password_is_auth_failed_and_never_shown(
    client: RedfishClient, server: BmcServer, system: LabSystem, auth_type: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    node = node_for(server.system_address(system.id), WRONG_PASSWORD,
                    redfish_auth_type=auth_type)
    with pytest.raises(DriverError) as caught:
        RedfishManagement(client).validate(node)
    error = caught.value
    assert error.extra["kind"] == "auth_failed"
    assert "username and password" in error.detail
    assert_no_secret(error, WRONG_PASSWORD, PASSWORD)
    assert WRONG_PASSWORD not in caplog.text and PASSWORD not in caplog.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_closed_port_is_unreachable(client: RedfishClient, system: LabSystem) -> None:
    node = node_for(f"http://127.0.0.1:{free_port()}/redfish/v1/Systems/{system.id}")
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        RedfishPower(client).get_power_state(node)
    assert caught.value.extra["kind"] == "unreachable"
    assert "check the bmc address" in caught.value.detail.lower()
    assert_no_secret(caught.value, PASSWORD)
    assert time.monotonic() - started < 3


def test_silent_bmc_times_out_as_unreachable(system: LabSystem) -> None:
    quick = RedfishClient(read_timeout=0.3, connect_timeout=0.3, retries=1)
    with socket.socket() as listener:  # accepts TCP connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        node = node_for(f"http://127.0.0.1:{port}/redfish/v1/Systems/{system.id}")
        with pytest.raises(DriverError) as caught:
            RedfishPower(quick).get_power_state(node)
    assert caught.value.extra["kind"] == "unreachable"
    assert "timed out" in caught.value.detail


class _NotRedfish(http.server.BaseHTTPRequestHandler):
    status = 404

    def do_GET(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [404, 200])
def test_web_server_that_is_not_redfish_is_a_protocol_error(
    client: RedfishClient, system: LabSystem, status: int
) -> None:
    handler = type("Handler", (_NotRedfish,), {"status": status})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"http://127.0.0.1:{httpd.server_address[1]}/redfish/v1/Systems/{system.id}"
        with pytest.raises(DriverError) as caught:
            RedfishManagement(client).validate(node_for(address))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert caught.value.extra["kind"] == "protocol_error"
    assert "not a Redfish service" in caught.value.detail


def test_unknown_system_is_a_protocol_error_naming_the_system(
    client: RedfishClient, server: BmcServer, system: LabSystem
) -> None:
    node = node_for(server.system_address("no-such-system"))
    with pytest.raises(DriverError) as caught:
        RedfishPower(client).get_power_state(node)
    assert caught.value.extra["kind"] == "protocol_error"
    assert "no-such-system" in caught.value.detail


@pytest.mark.parametrize("address", [
    "ftp://127.0.0.1/redfish/v1/Systems/x",
    "http://127.0.0.1:8000/not/redfish",
    "http://admin:secret@127.0.0.1/redfish/v1/Systems/x",
])
def test_bad_addresses_are_refused(client: RedfishClient, address: str) -> None:
    with pytest.raises(DriverError) as caught:
        RedfishPower(client).get_power_state(node_for(address))
    assert caught.value.extra["kind"] == "invalid_address"
    assert "secret" not in str(caught.value)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab-bmc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "bmc.crt", directory / "bmc.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_untrusted_certificate_and_its_fixes(
    client: RedfishClient, emulator: LabBmcEmulator, system: LabSystem, tmp_path: Path
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    with start_bmc_server(emulator, ssl_certfile=cert_file, ssl_keyfile=key_file) as tls:
        assert tls.base_url.startswith("https://127.0.0.1:")
        address = tls.system_address(system.id)
        with pytest.raises(DriverError) as caught:
            RedfishManagement(client).validate(node_for(address))
        assert caught.value.extra["kind"] == "tls_error"
        assert "verify_tls" in caught.value.detail
        insecure = RedfishManagement(client).validate(node_for(address, verify_tls=False))
        assert insecure["serial"] == system.serial
        trusted = node_for(address, redfish_ca_bundle=str(cert_file))
        assert RedfishManagement(client).validate(trusted)["serial"] == system.serial
