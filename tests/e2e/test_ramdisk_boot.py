"""The deploy ramdisk boots in a real (TCG) virtual machine and its agent reports the VM's
hardware: CPU count, memory, disk size and MAC as QEMU was told."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from metalfleet.boot.ramdisk import build_ramdisk

pytestmark = pytest.mark.slow

MAC = "52:54:00:6d:66:01"
DISK_BYTES = 3 * 1024**3


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: install the Debian package {package} (./run tests does)")
    return path


def test_ramdisk_boots_and_reports_the_vms_hardware(tmp_path: Path) -> None:
    qemu = _require("qemu-system-x86_64", "qemu-system-x86")
    _require("busybox", "busybox-static")
    ramdisk = build_ramdisk(tmp_path / "ramdisk")
    assert ramdisk.initrd_bytes < 16 * 1024**2, "the ramdisk stays small"

    reports: list[dict[str, Any]] = []

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            reports.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    disk = tmp_path / "disk.raw"
    with disk.open("wb") as handle:
        handle.truncate(DISK_BYTES)
    port = server.server_address[1]
    command = [
        qemu, "-accel", "tcg", "-m", "256", "-smp", "2", "-nographic", "-no-reboot",
        "-kernel", str(ramdisk.kernel), "-initrd", str(ramdisk.initrd),
        "-append", f"console=ttyS0 quiet metalfleet.callback=http://10.0.2.2:{port}/inventory "
                   "metalfleet.after=poweroff",
        "-netdev", "user,id=n0", "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
        "-drive", f"file={disk},if=virtio,format=raw",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    finally:
        server.shutdown()
    console = result.stdout[-3000:]
    assert reports, f"no inventory arrived; console:\n{console}"
    inventory = reports[0]["inventory"]
    assert inventory["cpu"]["threads"] == 2
    assert 160 <= inventory["memory"]["total_mib"] <= 256
    assert [(d["name"], d["size_bytes"]) for d in inventory["disks"]] == [("vda", DISK_BYTES)]
    assert [n["mac"] for n in inventory["nics"]] == [MAC]
    assert any(p["vendor_id"] == "0x1af4" for p in inventory["pci"]), "virtio devices listed"
    assert "Power down" in result.stdout, "the agent powered the VM off as told"
