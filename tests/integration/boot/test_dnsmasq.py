"""metalfleet's dnsmasq configuration against a real dnsmasq and a real DHCP client.

dnsmasq runs in a network namespace the test creates, a busybox udhcpc in a second one,
joined by a veth pair: no traffic leaves the test's namespaces.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalfleet.boot.dnsmasq import DhcpSettings, Dnsmasq, HostEntry

pytestmark = pytest.mark.slow

CLIENT_MAC = "52:54:00:6d:66:aa"
DUMP = """#!/bin/sh
[ "$1" = bound ] && env > "$DUMP_TO"
exit 0
"""


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: install {package}")
    return path


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    _need("dnsmasq", "dnsmasq-base")
    _need("busybox", "busybox-static")
    tag = uuid.uuid4().hex[:6]
    server, client = f"mfs-{tag}", f"mfc-{tag}"
    _sh("ip", "netns", "add", server)
    _sh("ip", "netns", "add", client)
    try:
        _sh("ip", "link", "add", f"vs{tag}", "type", "veth", "peer", "name", f"vc{tag}")
        _sh("ip", "link", "set", f"vs{tag}", "netns", server)
        _sh("ip", "link", "set", f"vc{tag}", "netns", client)
        _sh("ip", "-n", server, "addr", "add", "10.77.0.1/24", "dev", f"vs{tag}")
        _sh("ip", "-n", server, "link", "set", f"vs{tag}", "up")
        _sh("ip", "-n", client, "link", "set", f"vc{tag}", "address", CLIENT_MAC)
        _sh("ip", "-n", client, "link", "set", f"vc{tag}", "up")
        yield server, client
    finally:
        subprocess.run(["ip", "netns", "del", server], capture_output=True)
        subprocess.run(["ip", "netns", "del", client], capture_output=True)


def _lease(client: str, tmp_path: Path, *extra: str) -> dict[str, str]:
    script = tmp_path / "dump.sh"
    script.write_text(DUMP)
    script.chmod(0o755)
    out = tmp_path / "lease.env"
    out.unlink(missing_ok=True)
    interface = "vc" + client.removeprefix("mfc-")
    subprocess.run(
        ["nsenter", f"--net=/run/netns/{client}", "busybox", "udhcpc", "-i", interface,
         "-f", "-q", "-n", "-t", "5", "-T", "2", "-O", "mtu", "-s", str(script), *extra],
        check=True, capture_output=True, timeout=60,
        env={"DUMP_TO": str(out), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    return dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


def test_full_dhcp_boot_files_tftp_and_reservations(namespaces: tuple[str, str],
                                                    tmp_path: Path) -> None:
    server, client = namespaces
    settings = DhcpSettings(interface="vs" + server.removeprefix("mfs-"), cidr="10.77.0.0/24",
                            api_url="http://10.77.0.1:8080", dhcp_start="10.77.0.100",
                            dhcp_end="10.77.0.150", gateway="10.77.0.1", mtu=9000)
    dnsmasq = Dnsmasq(settings, tmp_path / "dhcp")
    (tmp_path / "dhcp").mkdir()
    dnsmasq.start([], prefix=["nsenter", f"--net=/run/netns/{server}"])
    try:
        lease = _lease(client, tmp_path)
        assert 100 <= int(lease["ip"].rsplit(".", 1)[1]) <= 150
        assert lease["boot_file"] == "undionly.kpxe" and lease["mtu"] == "9000"
        uefi = _lease(client, tmp_path, "-x", "0x5d:0007")
        assert uefi["boot_file"] == "ipxe.efi"

        dnsmasq.reload([HostEntry(mac=CLIENT_MAC, name="node-1", address="10.77.0.50")])
        reserved = _lease(client, tmp_path)
        assert reserved["ip"] == "10.77.0.50"

        # Our dump script only records the lease; configure it as a real client would.
        _sh("ip", "-n", client, "addr", "add", f"{reserved['ip']}/24", "dev",
            "vc" + client.removeprefix("mfc-"))
        fetched = tmp_path / "boot.ipxe"
        subprocess.run(["nsenter", f"--net=/run/netns/{client}", "busybox", "tftp", "-g",
                        "-r", "boot.ipxe", "-l", str(fetched), "10.77.0.1"],
                       check=True, capture_output=True, timeout=30)
        script = fetched.read_text()
        assert script.startswith("#!ipxe")
        assert "http://10.77.0.1:8080/v1/boot/ipxe?mac=${net0/mac}" in script
    finally:
        dnsmasq.stop()


def test_proxy_mode_is_accepted_by_dnsmasq(tmp_path: Path) -> None:
    _need("dnsmasq", "dnsmasq-base")
    settings = DhcpSettings(interface="lo", cidr="10.78.0.0/24", api_url="http://10.78.0.1",
                            mode="proxy")
    dnsmasq = Dnsmasq(settings, tmp_path)
    dnsmasq.write([HostEntry(mac=CLIENT_MAC, name="n1")])
    dnsmasq.check()
    conf = dnsmasq.conf_file.read_text()
    assert "dhcp-range=10.78.0.0,proxy" in conf and "pxe-service=" in conf
    assert (tmp_path / "tftp" / "undionly.kpxe").exists()
