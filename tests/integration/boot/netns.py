"""Network namespaces with a DHCP client, for the boot service tests."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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
