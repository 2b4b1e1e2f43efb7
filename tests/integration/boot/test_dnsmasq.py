"""metalfleet's dnsmasq configuration against a real dnsmasq and a real DHCP client.

dnsmasq runs in a network namespace the test creates, a busybox udhcpc in a second one,
joined by a veth pair: no traffic leaves the test's namespaces.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from metalfleet.boot.dnsmasq import DhcpSettings, Dnsmasq, HostEntry
from tests.integration.boot.netns import CLIENT_MAC, _lease, _need, _sh, namespaces

__all__ = ["namespaces"]  # the fixture, used by name

pytestmark = pytest.mark.slow

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


def test_uefi_http_boot_clients_get_the_ipxe_url(namespaces: tuple[str, str],
                                                  tmp_path: Path) -> None:
    server, client = namespaces
    settings = DhcpSettings(interface="vs" + server.removeprefix("mfs-"), cidr="10.77.0.0/24",
                            api_url="http://10.77.0.1:8080/", dhcp_start="10.77.0.100",
                            dhcp_end="10.77.0.150")
    (tmp_path / "dhcp").mkdir()
    dnsmasq = Dnsmasq(settings, tmp_path / "dhcp")
    dnsmasq.start([], prefix=["nsenter", f"--net=/run/netns/{server}"])
    try:
        # What UEFI firmware sends for HTTP boot: client architecture 16 (x64 UEFI HTTP)
        # and the vendor class HTTPClient; the answer must carry the URL and echo the class.
        http = _lease(client, tmp_path, "-x", "0x5d:0010", "-V",
                      "HTTPClient:Arch:00016:UNDI:003001")
        assert http["boot_file"] == "http://10.77.0.1:8080/v1/boot/ipxe.efi"
        assert http["vendor"] == "HTTPClient"
        bios = _lease(client, tmp_path)
        assert bios["boot_file"] == "undionly.kpxe" and "vendor" not in bios
    finally:
        dnsmasq.stop()
