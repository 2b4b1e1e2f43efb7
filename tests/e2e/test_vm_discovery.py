"""Discovery on a real (virtual) machine: a QEMU VM whose MAC nobody enrolled PXE-boots,
gets the discovery ramdisk, its agent enrolls it as a new node with its real inventory, and
the VM powers itself off. SQLite only (the API paths are covered on both databases by
tests/integration/boot/test_discovery.py); one VM boot under TCG, bounded.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalfleet.lab.vm import lab as vmlab
from metalfleet.lab.vm.machines import Machines
from tests.e2e.labproc import Lab
from tests.e2e.test_vm_deploy import api

pytestmark = pytest.mark.slow


@pytest.fixture
def one_vm_lab(tmp_path: Path) -> Iterator[Lab]:
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"),
                          ("busybox", "busybox-static"), ("syslinux", "syslinux"),
                          ("mcopy", "mtools"), ("mkfs.fat", "dosfstools")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: install {package} (./run tests does)")
    lab = Lab(tmp_path / "data", f"sqlite:///{tmp_path / 'mf.db'}", size=0)
    lab.start()
    try:
        lab.cli("lab", "vms", "--count", "1", "--data-dir", str(lab.data_dir))
        yield lab
    finally:
        lab.cli("lab", "vms", "--stop", "--data-dir", str(lab.data_dir), check=False)
        lab.stop()


def test_an_unknown_vm_boots_and_appears_as_a_node(one_vm_lab: Lab) -> None:
    client = api(one_vm_lab)
    # `lab vms` enrolled the VM; forget it so that its MAC is unknown again.
    assert client.delete("/v1/nodes/vm-01").status_code == 204
    specs = vmlab.specs(one_vm_lab.data_dir / "vmlab")
    spec = next(iter(specs.values()))
    machines = Machines(specs)
    system_id = next(iter(specs))
    machines.start(system_id, "Pxe")
    try:
        deadline = time.monotonic() + 240
        while not (nodes := client.get("/v1/nodes").json()["items"]):
            assert time.monotonic() < deadline, "the unknown VM never appeared as a node"
            time.sleep(2)
        while machines.running(system_id):  # the discovery ramdisk powers the VM off
            assert time.monotonic() < deadline, "the VM did not power off after discovery"
            time.sleep(1)
    finally:
        machines.stop_all()
    [node] = nodes
    assert node["name"] == "node-" + spec.mac.replace(":", "")
    assert node["state"] == "enrolled" and node["hardware_type"] == "none"
    assert node["labels"] == {"metalfleet.io/discovered": "true"}
    assert [(p["mac"], p["pxe"]) for p in node["ports"]] == [(spec.mac, True)]
    inventory = client.get(f"/v1/nodes/{node['name']}").json()["inventory"]
    assert [(d["name"], d["size_bytes"]) for d in inventory["disks"]] == [("vda", 4 * 1024**3)]
    assert inventory["cpu"]["threads"] == 1
    kinds = [e["kind"] for e in client.get(f"/v1/nodes/{node['name']}/events").json()["items"]]
    assert kinds.count("discovered") == 1
