"""A software switch in a network namespace with hosts on its ports, for real-packet tests.

``switch`` is a namespace whose ports are veth ends named ``pa``, ``pb``, ``pg`` (in the
switch) wired to three host namespaces: A, B and a gateway G, all in one /24 so only the
layer-2 path decides who reaches whom. Tests move ports with the drivers and ping.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass

import pytest

SUBNET = "10.99.{n}.{host}"
HOSTS = {"a": 11, "b": 12, "g": 1}


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True)


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: install {package} (./run setup does)")
    return path


@dataclass
class Fabric:
    switch: str
    hosts: dict[str, str]  # "a" -> namespace
    net: int

    def address(self, host: str) -> str:
        return SUBNET.format(n=self.net, host=HOSTS[host])

    def reaches(self, source: str, target: str) -> bool:
        """One ping with a 1 s wait, after flushing ARP (a cached entry is not a path)."""
        subprocess.run(["ip", "-n", self.hosts[source], "neigh", "flush", "all"],
                       capture_output=True)
        done = subprocess.run(["ip", "netns", "exec", self.hosts[source], "ping", "-c", "1",
                               "-W", "1", self.address(target)], capture_output=True)
        return done.returncode == 0


def kernel_has_vlan_filtering() -> bool:
    """Whether this kernel's bridges filter VLANs (CONFIG_BRIDGE_VLAN_FILTERING)."""
    namespace = f"mfprobe-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", namespace)
    try:
        done = subprocess.run(["ip", "-n", namespace, "link", "add", "br0", "type", "bridge",
                               "vlan_filtering", "1"], capture_output=True)
        return done.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
