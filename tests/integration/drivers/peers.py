"""Real BMC peers for the driver tests: sushy-tools' emulator and OpenIPMI's ipmi_sim.

Each helper starts the peer on 127.0.0.1 on a free port, waits (with a deadline, polling)
until it answers, and fails the test loudly when the tool is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SUSHY_USER = "admin"
SUSHY_PASSWORD = "Sushy-S3cret-pw"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(interval)


def find_tool(name: str, package: str) -> str:
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: install {package} (the BMC tests need the real "
                    "peer and never skip)")
    return path


@dataclass
class SushyEmulator:
    process: subprocess.Popen[bytes]
    port: int
    systems: dict[str, str]  # name -> uuid
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def address(self, name: str) -> str:
        return f"{self.base_url}/redfish/v1/Systems/{self.systems[name]}"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=(SUSHY_USER, SUSHY_PASSWORD),
                            timeout=10)

    def system(self, name: str) -> dict[str, object]:
        with self.http() as http:
            answer = http.get(f"/redfish/v1/Systems/{self.systems[name]}")
            answer.raise_for_status()
            body: dict[str, object] = answer.json()
            return body

    def reset(self, name: str, reset_type: str) -> None:
        """Change the power directly on the emulator, as someone outside metalfleet would."""
        with self.http() as http:
            answer = http.post(
                f"/redfish/v1/Systems/{self.systems[name]}/Actions/ComputerSystem.Reset",
                json={"ResetType": reset_type})
            assert answer.status_code in (200, 202, 204), answer.text

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_sushy_emulator(workdir: Path, names: list[str]) -> SushyEmulator:
    """sushy-emulator with the fake driver, HTTP basic auth, listening on 127.0.0.1."""
    binary = find_tool("sushy-emulator", "the Python package sushy-tools")
    import bcrypt

    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / "htpasswd"
    hashed = bcrypt.hashpw(SUSHY_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{SUSHY_USER}:{hashed}\n")
    systems = {name: str(uuid.uuid4()) for name in names}
    fake_systems = [
        {"uuid": system_id, "name": name, "power_state": "Off",
         "nics": [{"mac": f"52:54:00:aa:00:{index:02x}", "ip": f"172.22.0.{10 + index}"}]}
        for index, (name, system_id) in enumerate(systems.items())]
    port = free_port()
    config = workdir / "emulator.conf"
    config.write_text(
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(workdir / 'state')!r}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fake_systems!r}\n")
    log = workdir / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "--config", str(config)], stdout=out,
                                   stderr=subprocess.STDOUT, cwd=workdir)
    emulator = SushyEmulator(process, port, systems, log)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"sushy-emulator exited: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{emulator.base_url}/redfish/v1", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, 30, "sushy-emulator answering")
    except BaseException:
        emulator.stop()
        raise
    return emulator


# --- ipmi_sim ----------------------------------------------------------------------------

IPMI_USER = "admin"
IPMI_PASSWORD = "Ipmi-S3cret-pw"

CHASSIS_SCRIPT = """#!/bin/sh
# ipmi_sim's chassis_control: "<mc> get power boot" / "<mc> set power 1 boot pxe"
STATE="$(dirname "$0")/chassis"
mkdir -p "$STATE"
shift
op=$1; shift
case "$op" in
  get) for p in "$@"; do
         case $p in
           power) echo "power:$(cat "$STATE/power" 2>/dev/null || echo 0)";;
           boot) echo "boot:$(cat "$STATE/boot" 2>/dev/null || echo default)";;
         esac
       done;;
  set) while [ $# -ge 2 ]; do
         echo "$2" > "$STATE/$1"; echo "$1 $2" >> "$STATE/history"; shift 2
       done;;
esac
"""


def _sdr_temperature(number: int, name: str) -> list[int]:
    """A full sensor record (type 01h): a temperature in degrees C, linear, M=1."""
    body = [0x20, 0x00, number, 0x07, 0x01, 0x67, 0x40, 0x01, 0x01, 0, 0, 0, 0, 0, 0,
            0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0, 0, 0, 0xFF, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    encoded = name.encode()
    body += [0xC0 | len(encoded), *encoded]
    return [number, 0x00, 0x51, 0x01, len(body), *body]


def _fru_area(fields: list[str], header: list[int]) -> list[int]:
    area = list(header)
    for value in fields:
        encoded = value.encode()
        area += [0xC0 | len(encoded), *encoded]
    area.append(0xC1)
    while (len(area) + 1) % 8:
        area.append(0)
    area[1] = (len(area) + 1) // 8
    area.append((-sum(area)) & 0xFF)
    return area


def fru_bytes(board: list[str], product: list[str]) -> list[int]:
    """A FRU image with a board and a product area (IPMI Platform Management FRU spec)."""
    board_area = _fru_area(board, [0x01, 0, 0x19, 0, 0, 0])
    product_area = _fru_area(product, [0x01, 0, 0x19])
    common = [0x01, 0, 0, 1, 1 + len(board_area) // 8, 0, 0]
    common.append((-sum(common)) & 0xFF)
    return common + board_area + product_area


def _hex(values: list[int]) -> str:
    return " ".join(f"0x{value:02x}" for value in values)


@dataclass
class IpmiSim:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    ipmitool_path: str = field(default="")

    @property
    def address(self) -> str:
        return f"ipmi://127.0.0.1:{self.port}"

    def chassis(self, key: str) -> str | None:
        path = self.workdir / "chassis" / key
        return path.read_text().strip() if path.exists() else None

    def set_chassis(self, key: str, value: str) -> None:
        (self.workdir / "chassis").mkdir(exist_ok=True)
        (self.workdir / "chassis" / key).write_text(f"{value}\n")

    def ipmitool(self, *args: str, password: str = IPMI_PASSWORD) -> str:
        result = subprocess.run(
            [self.ipmitool_path, "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p",
             str(self.port), "-U", IPMI_USER, "-P", password, "-R", "2", "-N", "2", *args],
            capture_output=True, text=True, timeout=60, check=False)
        return result.stdout + result.stderr

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_ipmi_sim(workdir: Path) -> IpmiSim:
    binary = find_tool("ipmi_sim", "the Debian package openipmi")
    ipmitool = find_tool("ipmitool", "the Debian package ipmitool")
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "chassis_control"
    script.write_text(CHASSIS_SCRIPT)
    script.chmod(0o755)
    port = free_port(socket.SOCK_DGRAM)
    auths = "none md5 straight"
    (workdir / "lan.conf").write_text(f"""name "metalfleet-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{script} 0x20"
  user 1 true "" "unused" user 10 {auths}
  user 2 true "{IPMI_USER}" "{IPMI_PASSWORD}" admin 10 {auths}
""")
    fru = fru_bytes(["Supermicro", "X12DPU-6", "WM212S600123", "BPN-X12DPU", ""],
                    ["Supermicro", "SYS-120U-TNR", "SYS-120U", "1.0", "S417255X1A12345", "", ""])
    (workdir / "sim.emu").write_text("\n".join([
        "mc_setbmc 0x20",
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr",
        "sel_enable 0x20 1000 0x0a",
        "sensor_add 0x20 0 1 0x01 0x01",
        "sensor_set_value 0x20 0 1 38 0",
        "sensor_set_event_support 0x20 0 1 enable scanning per-state "
        "000000000000000 000000000000000 000000000000000 000000000000000",
        f"main_sdr_add 0x20 {_hex(_sdr_temperature(1, 'Inlet Temp'))}",
        f"mc_add_fru_data 0x20 0 0x100 data {_hex(fru)}",
        "mc_enable 0x20", ""]))
    log = workdir / "ipmi_sim.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-c", str(workdir / "lan.conf"), "-f", str(workdir / "sim.emu"),
             "-s", str(workdir / "state"), "-n"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    sim = IpmiSim(process, port, workdir, ipmitool)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"ipmi_sim exited: {log.read_text()[-2000:]}")
        return "Chassis Power is" in sim.ipmitool("power", "status")

    try:
        wait_until(answers, 30, "ipmi_sim answering", interval=0.2)
    except BaseException:
        sim.stop()
        raise
    return sim
