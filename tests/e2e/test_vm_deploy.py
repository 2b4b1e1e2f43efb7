"""A real network-boot deploy on QEMU virtual machines (TCG), as `metalfleet lab vms` sets up.

Two VMs with empty disks PXE-boot through iPXE into the deploy ramdisk, whose agent inspects
them, burns them in, writes an image, and wipes it again; the deployed image boots from the
VM's disk and fetches its cloud-init meta-data (the first-boot callback). Failure paths: a
checksum mismatch, and a VM killed mid-write (heartbeat timeout), each followed by a retry.
SQLite only: the API paths are the same on PostgreSQL (covered by the integration tests),
and each VM boot costs tens of seconds under emulation.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.labproc import Lab

pytestmark = pytest.mark.slow


@pytest.fixture
def vm_lab(tmp_path: Path) -> Iterator[Lab]:
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"),
                          ("busybox", "busybox-static"), ("syslinux", "syslinux"),
                          ("mcopy", "mtools"), ("mkfs.fat", "dosfstools")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: install {package} (./run tests does)")
    lab = Lab(tmp_path / "data", f"sqlite:///{tmp_path / 'mf.db'}", size=0,
              extra_args=("--agent-timeout", "15"))
    lab.start()
    try:
        lab.cli("lab", "vms", "--count", "2", "--data-dir", str(lab.data_dir))
        yield lab
    finally:
        lab.cli("lab", "vms", "--stop", "--data-dir", str(lab.data_dir), check=False)
        lab.stop()


def api(lab: Lab) -> httpx.Client:
    token = (lab.data_dir / "admin.token").read_text().strip()
    return httpx.Client(base_url=lab.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def act(client: httpx.Client, name: str, action: str, body: dict[str, Any] | None = None,
        timeout: float = 300) -> dict[str, Any]:
    r = client.post(f"/v1/nodes/{name}/actions/{action}", json=body or {})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + timeout
    while True:
        node: dict[str, Any] = client.get(f"/v1/nodes/{name}").json()
        if node["reservation"] is None and node["state"] not in (
                "verifying", "inspecting", "burning-in", "deploying", "releasing", "cleaning"):
            return node
        assert time.monotonic() < deadline, f"{name} stuck in {node['state']}"
        time.sleep(1)


def both(client: httpx.Client, action: str) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda n: act(client, n, action), ["vm-01", "vm-02"]))


class SlowImage(http.server.BaseHTTPRequestHandler):
    """Serves the image at 4 MiB/s so a test can kill the VM while the agent writes."""

    data = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        try:
            for start in range(0, len(self.data), 1024 * 1024):
                self.wfile.write(self.data[start:start + 1024 * 1024])
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the VM was killed mid-download: that is the point

    def log_message(self, *args: Any) -> None:
        pass


def test_pxe_deploy_on_virtual_machines(vm_lab: Lab) -> None:
    client = api(vm_lab)
    assert [n["state"] for n in both(client, "manage")] == ["manageable"] * 2
    inspected = both(client, "inspect")
    for node, index in zip(inspected, (1, 2), strict=True):
        assert node["state"] == "inspected", node["last_error"]
        inventory = node["inventory"]
        assert inventory["cpu"]["threads"] == 1
        assert 256 <= inventory["memory"]["total_mib"] <= 384
        assert [(d["name"], d["size_bytes"]) for d in inventory["disks"]] == [("vda", 4 * 1024**3)]
        assert [n["mac"] for n in inventory["nics"]] == [f"52:54:00:6d:66:{index:02x}"]
    assert [n["state"] for n in both(client, "provide")] == ["available"] * 2

    node = act(client, "vm-01", "deploy", {"image": "vm-tiny"})
    assert node["state"] == "active", node["last_error"]
    deadline = time.monotonic() + 120
    while not [e for e in client.get("/v1/nodes/vm-01/events").json()["items"]
               if e["kind"] == "first-boot"]:
        assert time.monotonic() < deadline, "the deployed OS never fetched its meta-data"
        time.sleep(2)
    console = (vm_lab.data_dir / "vmlab" / "vm-01.console.log").read_text(errors="replace")
    assert "vm-tiny: booted from disk" in console and "local-hostname: vm-01" in console

    image = client.get("/v1/images/vm-tiny").json()
    client.post("/v1/images", json={**{k: image[k] for k in ("location", "size_bytes")},
                                    "name": "vm-bad", "sha256": "0" * 64})
    node = act(client, "vm-02", "deploy", {"image": "vm-bad"})
    assert node["state"] == "deploy-failed" and "checksum mismatch" in node["last_error"]

    data = (vm_lab.data_dir / "images" / "vm-tiny.raw").read_bytes()
    SlowImage.data = data
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowImage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client.post("/v1/images", json={
            "name": "vm-slow", "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
            "location": f"http://10.0.2.2:{server.server_address[1]}/vm-slow.raw"})
        assert client.post("/v1/nodes/vm-02/actions/deploy",
                           json={"image": "vm-slow"}).status_code == 202
        deadline = time.monotonic() + 180
        while (client.get("/v1/nodes/vm-02").json()["progress"]["percent"] or 0) < 10:
            assert time.monotonic() < deadline, "the slow write never started"
            time.sleep(0.3)
        subprocess.run(["pkill", "-KILL", "-f", "--", "-name vm-02 "], check=True)
        deadline = time.monotonic() + 120
        while (node := client.get("/v1/nodes/vm-02").json())["state"] == "deploying":
            assert time.monotonic() < deadline, "a dead agent left the node deploying"
            time.sleep(1)
        assert node["state"] == "deploy-failed"
        assert "stopped heartbeating" in node["last_error"], node["last_error"]
    finally:
        server.shutdown()
    # The retry deploys vm-tiny as a qcow2 upload: converted once on the API server, the agent
    # writes the raw stream at the guests' address for the API (the conversion's record is in
    # the image's row, so the conductor needs no file of its own).
    qcow2 = vm_lab.data_dir.parent / "vm-tiny.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                    str(vm_lab.data_dir / "images" / "vm-tiny.raw"), str(qcow2)], check=True)
    # Uploaded as the guests reach the API (10.0.2.2:port): the image's location is that URL.
    guest_host = image["location"].split("/")[2]
    r = client.post("/v1/images/upload", params={"name": "vm-tiny-qcow2"},
                    content=qcow2.read_bytes(), headers={"Host": guest_host})
    assert r.status_code == 201 and r.json()["disk_format"] == "qcow2", r.text
    assert r.json()["location"] == f"http://{guest_host}/images/vm-tiny-qcow2.qcow2"
    r = client.post("/v1/images/vm-tiny-qcow2/convert")
    assert r.status_code == 200 and r.json()["sha256"] == image["sha256"], r.text
    node = act(client, "vm-02", "deploy", {"image": "vm-tiny-qcow2"})
    assert node["state"] == "active", node["last_error"]
    deadline = time.monotonic() + 120
    console_02 = vm_lab.data_dir / "vmlab" / "vm-02.console.log"
    while "local-hostname: vm-02" not in console_02.read_text(errors="replace"):
        assert time.monotonic() < deadline, "vm-02 never booted the qcow2 deploy from disk"
        time.sleep(2)

    node = act(client, "vm-01", "undeploy")
    assert node["state"] == "available", node["last_error"]
    with (vm_lab.data_dir / "vmlab" / "vm-01.raw").open("rb") as disk:
        head = disk.read(4 * 1024 * 1024)
    assert head.count(0) == len(head), "cleaning wiped the deployed image's partition table"
    steps = [(e["from_state"], e["to_state"]) for e in
             client.get("/v1/nodes/vm-01/events", params={"limit": 1000}).json()["items"]
             if e["kind"] == "transition"]
    assert steps[-5:] == [("available", "deploying"), ("deploying", "active"),
                          ("active", "releasing"), ("releasing", "cleaning"),
                          ("cleaning", "available")]
    assert json.loads(vm_lab.cli("node", "show", "vm-02", "-o", "json").stdout)["image"] == \
        "vm-tiny-qcow2"
