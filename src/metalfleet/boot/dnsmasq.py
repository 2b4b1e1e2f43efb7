"""DHCP and TFTP for the provisioning network: a dnsmasq that metalfleet configures.

Two modes: ``full`` hands out addresses from the network's DHCP range (and fixed addresses
to enrolled nodes through a hosts file); ``proxy`` answers only the PXE part beside an
existing DHCP server. Legacy BIOS clients get undionly.kpxe, UEFI clients ipxe.efi, UEFI HTTP
clients ipxe.efi over HTTP; once iPXE runs it fetches boot.ipxe, which asks the API what to
boot. Nodes come and go by rewriting the hosts file and sending SIGHUP: no restart.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from metalfleet.boot.ipxe import chain_script
from metalfleet.core.errors import MetalfleetError

IPXE_DIR = Path("/usr/lib/ipxe")
BOOT_FILES = ("undionly.kpxe", "ipxe.efi", "snponly.efi")


def http_boot_url(api_url: str) -> str:
    """What UEFI HTTP boot clients download: iPXE, served by the API (api/routes/boot.py)."""
    return f"{api_url.rstrip('/')}/v1/boot/ipxe.efi"


class DhcpError(MetalfleetError):
    status = 500
    title = "DHCP service error"


@dataclass(frozen=True)
class DhcpSettings:
    interface: str
    cidr: str
    api_url: str  # as nodes on this network reach the API
    mode: str = "full"  # full | proxy
    dhcp_start: str | None = None
    dhcp_end: str | None = None
    gateway: str | None = None
    mtu: int | None = None
    lease_time: str = "1h"


@dataclass(frozen=True)
class HostEntry:
    mac: str
    name: str
    address: str | None = None


def render_conf(settings: DhcpSettings, state_dir: Path) -> str:
    network = ipaddress.ip_network(settings.cidr)
    lines = [
        "# written by metalfleet; changes are overwritten",
        "port=0",  # DHCP and TFTP only, no DNS
        f"interface={settings.interface}",
        "bind-interfaces",
        "user=root",
        f"dhcp-leasefile={state_dir / 'leases'}",
        f"dhcp-hostsfile={state_dir / 'hosts'}",
        "enable-tftp",
        f"tftp-root={state_dir / 'tftp'}",
        "dhcp-match=set:ipxe,175",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        "dhcp-match=set:httpclient,option:client-arch,16",
        "log-dhcp",
    ]
    if settings.mode == "proxy":
        lines += [
            f"dhcp-range={network.network_address},proxy",
            'pxe-service=tag:!ipxe,x86PC,"metalfleet",undionly.kpxe',
            'pxe-service=tag:!ipxe,X86-64_EFI,"metalfleet",ipxe.efi',
            'pxe-service=tag:ipxe,x86PC,"metalfleet",boot.ipxe',
            'pxe-service=tag:ipxe,X86-64_EFI,"metalfleet",boot.ipxe',
        ]
    elif settings.mode == "full":
        if not (settings.dhcp_start and settings.dhcp_end):
            raise DhcpError(f"full DHCP on {settings.cidr} needs a DHCP range on the network; "
                            "set dhcp_start and dhcp_end, or use proxy mode")
        lines += [
            f"dhcp-range={settings.dhcp_start},{settings.dhcp_end},"
            f"{network.netmask},{settings.lease_time}",
            "dhcp-boot=tag:ipxe,boot.ipxe",
            "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
            "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe",
            "dhcp-option-force=tag:httpclient,60,HTTPClient",
            f"dhcp-boot=tag:httpclient,{http_boot_url(settings.api_url)}",
        ]
        if settings.gateway:
            lines.append(f"dhcp-option=option:router,{settings.gateway}")
        if settings.mtu:
            lines.append(f"dhcp-option=option:mtu,{settings.mtu}")
    else:
        raise DhcpError(f"unknown DHCP mode {settings.mode!r}; use full or proxy")
    return "\n".join(lines) + "\n"


def render_hosts(hosts: list[HostEntry]) -> str:
    lines = []
    for host in hosts:
        fields = [host.mac, *([host.address] if host.address else []), host.name]
        lines.append(",".join(fields))
    return "\n".join(lines) + ("\n" if lines else "")


class Dnsmasq:
    """One dnsmasq process for one provisioning network."""

    def __init__(self, settings: DhcpSettings, state_dir: Path,
                 binary: str | None = None) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.binary = binary or shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def conf_file(self) -> Path:
        return self.state_dir / "dnsmasq.conf"

    def write(self, hosts: list[HostEntry]) -> None:
        tftp = self.state_dir / "tftp"
        tftp.mkdir(parents=True, exist_ok=True)
        for name in BOOT_FILES:
            source = IPXE_DIR / name
            if source.exists() and not (tftp / name).exists():
                shutil.copy2(source, tftp / name)
        (tftp / "boot.ipxe").write_text(chain_script(self.settings.api_url))
        self.conf_file.write_text(render_conf(self.settings, self.state_dir))
        hosts_file = self.state_dir / "hosts"
        tmp = hosts_file.with_suffix(".tmp")
        tmp.write_text(render_hosts(hosts))
        tmp.replace(hosts_file)

    def check(self) -> None:
        result = subprocess.run([self.binary, "--test", f"--conf-file={self.conf_file}"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise DhcpError(f"dnsmasq rejects {self.conf_file}: {result.stderr.strip()}")

    def start(self, hosts: list[HostEntry], *, prefix: list[str] | None = None) -> None:
        """Write the configuration and start dnsmasq (``prefix`` e.g. nsenter for a netns)."""
        self.write(hosts)
        self.check()
        log = (self.state_dir / "dnsmasq.log").open("ab")
        self.process = subprocess.Popen(
            [*(prefix or []), self.binary, "--keep-in-foreground",
             f"--conf-file={self.conf_file}", "--log-facility=-"],
            stdout=log, stderr=log,
        )
        time.sleep(0.3)
        if self.process.poll() is not None:
            raise DhcpError(f"dnsmasq exited at start; see {self.state_dir / 'dnsmasq.log'}")

    def reload(self, hosts: list[HostEntry]) -> None:
        """New host reservations without a restart: rewrite the hosts file, then SIGHUP."""
        self.write(hosts)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
