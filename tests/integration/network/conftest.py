"""The software switch fixture (fabric.py has the pieces)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.network.fabric import HOSTS, SUBNET, Fabric, need, sh


@pytest.fixture
def fabric() -> Iterator[Fabric]:
    need("ip", "iproute2")
    need("ping", "iputils-ping")
    tag = uuid.uuid4().hex[:6]
    net = int(tag[:2], 16) % 200 + 20
    switch = f"mfsw-{tag}"
    hosts = {name: f"mfh{name}-{tag}" for name in HOSTS}
    sh("ip", "netns", "add", switch)
    try:
        for name, namespace in hosts.items():
            sh("ip", "netns", "add", namespace)
            sh("ip", "-n", switch, "link", "add", f"p{name}", "type", "veth", "peer", "name",
               "eth0", "netns", namespace)
            sh("ip", "-n", namespace, "addr", "add",
               f"{SUBNET.format(n=net, host=HOSTS[name])}/24", "dev", "eth0")
            sh("ip", "-n", namespace, "link", "set", "eth0", "up")
            sh("ip", "-n", namespace, "link", "set", "lo", "up")
        yield Fabric(switch, hosts, net)
    finally:
        for namespace in [switch, *hosts.values()]:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
