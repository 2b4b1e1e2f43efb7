"""Per-node iPXE scripts, chosen by MAC and lifecycle state.

A node whose next step runs in the deploy ramdisk (inspect, burn-in, deploy, clean) gets the
ramdisk with the agent pointed at the API and, once per boot attempt, the boot secret its
agent proves itself with (inventory/agent_auth.py); any other known node boots its local
disk; an
unknown MAC boots the same ramdisk in discovery mode (``metalfleet.mode=discover``): its
agent reports the machine, which becomes an enrolled node (inventory/discovery.py), and
powers off.
The URLs are the ones the node used to reach us, so they work whatever network it is on.
"""

from __future__ import annotations

RAMDISK_KERNEL = "metalfleet-ramdisk.kernel"
RAMDISK_INITRD = "metalfleet-ramdisk.initrd"


def chain_script(api_url: str) -> str:
    """The first-stage script (served over TFTP): DHCP, then ask the API what to boot."""
    return (
        "#!ipxe\n"
        "dhcp || goto retry\n"
        f"chain {api_url.rstrip('/')}/v1/boot/ipxe?mac=${{net0/mac}} || goto retry\n"
        ":retry\n"
        "sleep 5\n"
        "goto retry\n"
    )


def _ramdisk(base: str, kernel_args: str, params: str) -> str:
    line = " ".join(part for part in (kernel_args, f"metalfleet.api={base}", params) if part)
    return (
        f"kernel {base}/boot/ramdisk/{RAMDISK_KERNEL} {line}\n"
        f"initrd {base}/boot/ramdisk/{RAMDISK_INITRD}\n"
        "boot\n"
    )


def node_script(*, base_url: str, known: bool, ramdisk: bool, secret: str | None = None,
                kernel_args: str = "console=ttyS0 quiet", mac: str | None = None) -> str:
    """The script for one MAC. It is served to anyone who asks, so it names no node, tenant
    or state; ``secret`` (this boot attempt's, handed out once) goes on the kernel line."""
    base = base_url.rstrip("/")
    if not known:
        bootif = f" metalfleet.bootif={mac}" if mac else ""
        return ("#!ipxe\n"
                "echo metalfleet: unknown MAC: booting the discovery ramdisk\n"
                + _ramdisk(base, kernel_args, "metalfleet.mode=discover" + bootif))
    if ramdisk:
        proof = f"metalfleet.boot_secret={secret}" if secret else ""
        return ("#!ipxe\n"
                "echo metalfleet: booting the deploy ramdisk\n"
                + _ramdisk(base, kernel_args, proof))
    return (
        "#!ipxe\n"
        "echo metalfleet: booting from the local disk\n"
        "sanboot --no-describe --drive 0x80 || exit\n"
    )
