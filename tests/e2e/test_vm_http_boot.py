"""UEFI HTTP boot end to end: an OVMF (UEFI) QEMU VM with PXE turned off boots over HTTP
from metalfleet's dnsmasq configuration (full DHCP) in a network namespace.

The firmware's HTTP boot client gets the ipxe.efi URL from dnsmasq, downloads it from the
API's route, iPXE does DHCP again and is told boot.ipxe over TFTP, which chains to the API's
per-MAC script. The API is the real app (`create_app`) run by uvicorn inside the namespace;
the test ends when the VM asks it for its script. TCG, one VM, bounded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalfleet.boot.dnsmasq import IPXE_DIR, DhcpSettings, Dnsmasq

pytestmark = pytest.mark.slow

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
MAC = "52:54:00:6d:68:01"
ADDRESS = "10.79.0.1"
PORT = 8079
# The real API, on the namespace's bridge address, with a fresh SQLite database.
API = """
import sys, uvicorn
from pathlib import Path
from metalfleet.config import Settings
from metalfleet.server import bootstrap
from metalfleet.api.app import create_app
settings = Settings(database_url=f"sqlite:///{sys.argv[1]}/mf.db", data_dir=Path(sys.argv[1]))
context = bootstrap(settings)
uvicorn.run(create_app(context), host=sys.argv[2], port=int(sys.argv[3]), access_log=True)
"""


def _need(path: Path | str, package: str) -> None:
    found = Path(path).exists() if isinstance(path, Path) else shutil.which(path)
    if not found:
        pytest.fail(f"{path} is missing: install Debian's {package}")


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"mfh-{uuid.uuid4().hex[:6]}"
    _sh("ip", "netns", "add", name)
    try:
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        _sh("ip", "-n", name, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", name, "addr", "add", f"{ADDRESS}/24", "dev", "br0")
        _sh("ip", "-n", name, "link", "set", "br0", "up")
        _sh("ip", "-n", name, "tuntap", "add", "dev", "tap0", "mode", "tap")
        _sh("ip", "-n", name, "link", "set", "tap0", "master", "br0")
        _sh("ip", "-n", name, "link", "set", "tap0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def test_uefi_http_boot_reaches_the_api(netns: str, tmp_path: Path) -> None:
    for path, package in ((OVMF_CODE, "ovmf"), (OVMF_VARS, "ovmf"),
                          (IPXE_DIR / "ipxe.efi", "ipxe"), ("dnsmasq", "dnsmasq-base"),
                          ("qemu-system-x86_64", "qemu-system-x86")):
        _need(path, package)
    inside = ["ip", "netns", "exec", netns]
    data = tmp_path / "data"
    data.mkdir()
    api_log = tmp_path / "api.log"
    with api_log.open("wb") as log:
        api = subprocess.Popen([*inside, sys.executable, "-c", API, str(data), ADDRESS,
                                str(PORT)], stdout=log, stderr=subprocess.STDOUT)
    settings = DhcpSettings(interface="br0", cidr="10.79.0.0/24",
                            api_url=f"http://{ADDRESS}:{PORT}", dhcp_start="10.79.0.100",
                            dhcp_end="10.79.0.150")
    (tmp_path / "dhcp").mkdir()
    dnsmasq = Dnsmasq(settings, tmp_path / "dhcp")
    vm: subprocess.Popen[bytes] | None = None
    try:
        dnsmasq.start([], prefix=["nsenter", f"--net=/run/netns/{netns}"])
        variables = tmp_path / "vars.fd"
        shutil.copyfile(OVMF_VARS, variables)
        console = tmp_path / "console.log"
        started = time.monotonic()
        vm = subprocess.Popen([
            *inside, "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1",
            "-machine", "q35", "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{console}",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={variables}",
            # PXE off: the firmware's only network boot option left is HTTP.
            "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
            # romfile="": OVMF's own virtio-net driver and HTTP boot, not QEMU's iPXE ROM.
            "-device", f"virtio-net-pci,netdev=n0,mac={MAC},romfile=",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wanted = "GET /v1/boot/ipxe?mac="
        deadline = time.monotonic() + 300
        while wanted not in api_log.read_text(errors="replace"):
            assert api.poll() is None, f"the API stopped:\n{api_log.read_text()[-2000:]}"
            assert vm.poll() is None, f"the VM stopped; console:\n{console.read_text()[-2000:]}"
            assert time.monotonic() < deadline, (
                f"no HTTP boot within 300 s; API log:\n{api_log.read_text()[-2000:]}\n"
                f"dnsmasq:\n{(tmp_path / 'dhcp' / 'dnsmasq.log').read_text()[-2000:]}")
            time.sleep(1)
        took = time.monotonic() - started
        served = api_log.read_text(errors="replace")
        assert "GET /v1/boot/ipxe.efi" in served  # the firmware fetched iPXE over HTTP
        assert MAC in served or MAC.replace(":", "%3A") in served
        leases = (tmp_path / "dhcp" / "dnsmasq.log").read_text(errors="replace")
        assert "HTTPClient" in leases
        print(f"UEFI HTTP boot to the API's script: {took:.0f} s")
    finally:
        if vm is not None:
            vm.kill()
            vm.wait(timeout=30)
        dnsmasq.stop()
        api.terminate()
        api.wait(timeout=30)
