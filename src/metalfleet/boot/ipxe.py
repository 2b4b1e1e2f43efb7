"""Per-node iPXE scripts, chosen by MAC and lifecycle state.

A node whose next step runs in the deploy ramdisk (inspect, burn-in, deploy, clean) gets the
ramdisk with the agent pointed at the API; any other known node boots its local disk; an
unknown MAC boots the same ramdisk in discovery mode (``metalfleet.mode=discover``): its
agent reports the machine, which becomes an enrolled node (inventory/discovery.py), and
powers off.
The URLs are the ones the node used to reach us, so they work whatever network it is on.
"""

from __future__ import annotations

from metalfleet.inventory.agents import AGENT_STATES

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
    return (
        f"kernel {base}/boot/ramdisk/{RAMDISK_KERNEL} {kernel_args} metalfleet.api={base} "
        f"{params}\n"
        f"initrd {base}/boot/ramdisk/{RAMDISK_INITRD}\n"
        "boot\n"
    )


def node_script(*, base_url: str, node: str | None, state: str | None,
                kernel_args: str = "console=ttyS0 quiet", mac: str | None = None) -> str:
    base = base_url.rstrip("/")
    if node is None:
        bootif = f" metalfleet.bootif={mac}" if mac else ""
        return ("#!ipxe\n"
                "echo metalfleet: unknown MAC: booting the discovery ramdisk\n"
                + _ramdisk(base, kernel_args, "metalfleet.mode=discover" + bootif))
    if state in AGENT_STATES:
        return (
            "#!ipxe\n"
            f"echo metalfleet: {node} is {state}: booting the deploy ramdisk\n"
            + _ramdisk(base, kernel_args, f"metalfleet.node={node}")
        )
    return (
        "#!ipxe\n"
        f"echo metalfleet: {node} is {state}: booting from its disk\n"
        "sanboot --no-describe --drive 0x80 || exit\n"
    )
