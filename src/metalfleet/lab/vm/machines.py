"""QEMU virtual machines that stand in for servers in the VM lab.

Each VM has an empty raw disk, a virtio NIC on QEMU user networking (its own DHCP and TFTP:
the TFTP root holds the first-stage iPXE script that chains to metalfleet), and a serial
console log. TCG acceleration only: it works everywhere (KVM is not usable on every host).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from metalfleet.core.errors import MetalfleetError


class VmError(MetalfleetError):
    status = 500
    title = "Virtual machine error"


@dataclass(frozen=True)
class VmSpec:
    name: str
    mac: str
    disk: Path
    tftp_root: Path
    console_log: Path
    memory_mib: int = 384
    cpus: int = 1
    # NoCloud seed, passed as the SMBIOS serial (ds=nocloud-net;s=URL) at each power-on: the
    # API URL as the VM reaches it + the current deploy's seed path, which the server writes
    # to ``seed_file`` (<data-dir>/nocloud-seeds/<mac>) when a deploy starts.
    guest_api: str = ""
    seed_file: Path | None = None

    def seed_url(self) -> str:
        if not self.guest_api or self.seed_file is None or not self.seed_file.is_file():
            return ""
        return self.guest_api + self.seed_file.read_text().strip()


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise VmError("qemu-system-x86_64 is missing; install `apt-get install qemu-system-x86`")
    return path


def qemu_command(spec: VmSpec, boot: str) -> list[str]:
    order = "n" if boot == "Pxe" else "c"
    command = [
        qemu_binary(), "-accel", "tcg", "-m", str(spec.memory_mib), "-smp", str(spec.cpus),
        "-name", spec.name, "-display", "none", "-monitor", "none", "-no-reboot",
        "-serial", f"file:{spec.console_log}",
        "-boot", f"order={order}",
        "-netdev", f"user,id=n0,tftp={spec.tftp_root},bootfile=boot.ipxe",
        "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac}",
        "-drive", f"file={spec.disk},if=virtio,format=raw",
    ]
    seed_url = spec.seed_url()
    if seed_url:
        command += ["-smbios", f"type=1,serial=ds=nocloud-net;s={seed_url}"]
    return command


class Machines:
    """Running QEMU processes by system id; start replaces, stop kills."""

    def __init__(self, specs: dict[str, VmSpec]) -> None:
        self.specs = specs
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, system_id: str, boot: str) -> None:
        spec = self.specs[system_id]
        with self._lock:
            self._kill(system_id)
            spec.console_log.parent.mkdir(parents=True, exist_ok=True)
            with spec.console_log.open("ab") as log:
                log.write(f"\n--- metalfleet vm lab: power on, boot {boot} ---\n".encode())
            self._processes[system_id] = subprocess.Popen(
                qemu_command(spec, boot), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

    def stop(self, system_id: str) -> None:
        with self._lock:
            self._kill(system_id)

    def running(self, system_id: str) -> bool:
        with self._lock:
            process = self._processes.get(system_id)
            return process is not None and process.poll() is None

    def stop_all(self) -> None:
        with self._lock:
            for system_id in list(self._processes):
                self._kill(system_id)

    def _kill(self, system_id: str) -> None:
        process = self._processes.pop(system_id, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
