"""`metalfleet lab vms`: QEMU VMs behind Redfish BMCs, enrolled in a running metalfleet.

The VMs and their BMC emulator live in a background process (`python -m
metalfleet.lab.vm.daemon STATE_DIR`); this module prepares its state directory (disks, TFTP
root, the VM list), starts and stops it, and enrols the VMs through the API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metalfleet.boot.ipxe import chain_script
from metalfleet.boot.nocloud_seeds import SEED_FOLDER, seed_file
from metalfleet.lab.vm.machines import VmError, VmSpec

DISK_BYTES = 4 * 1024**3
GUEST_HOST = "10.0.2.2"  # how a VM on QEMU user networking reaches the host's loopback
VM_NAMESPACE = uuid.UUID("0e3f9a52-6c4b-4d0e-9a3c-2f1b7d5e8c11")


def guest_url(api_url: str) -> str:
    """The API URL as a VM sees it: the host's 127.0.0.1 is 10.0.2.2 to the guest."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{GUEST_HOST}:{parts.port or 80}"


def vm_mac(index: int) -> str:
    return f"52:54:00:6d:66:{index:02x}"


def prepare(state_dir: Path, count: int, api_url: str) -> list[dict[str, Any]]:
    """Write disks, the TFTP root and vms.json; keeps what exists (a restart keeps disks)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tftp = state_dir / "tftp"
    tftp.mkdir(exist_ok=True)
    guest_api = guest_url(api_url)
    (tftp / "boot.ipxe").write_text(chain_script(guest_api))
    listing = state_dir / "vms.json"
    known = {vm["name"]: vm for vm in json.loads(listing.read_text())} if listing.exists() else {}
    vms = []
    for index in range(1, count + 1):
        name = f"vm-{index:02d}"
        vm = known.get(name) or {
            "name": name, "id": str(uuid.uuid5(VM_NAMESPACE, name)), "mac": vm_mac(index),
            "username": "admin", "password": secrets.token_urlsafe(12),
        }
        disk = state_dir / f"{name}.raw"
        if not disk.exists():
            with disk.open("wb") as handle:
                handle.truncate(DISK_BYTES)
        vm.pop("seed_url", None)  # by MAC: an older lab's; the seed path is per deploy now
        vm.update(disk=str(disk), console_log=str(state_dir / f"{name}.console.log"),
                  guest_api=guest_api)
        vms.append(vm)
    listing.write_text(json.dumps(vms, indent=2))
    listing.chmod(0o600)
    return vms


def specs(state_dir: Path) -> dict[str, VmSpec]:
    vms = json.loads((state_dir / "vms.json").read_text())
    return {vm["id"]: VmSpec(name=vm["name"], mac=vm["mac"], disk=Path(vm["disk"]),
                             tftp_root=state_dir / "tftp", console_log=Path(vm["console_log"]),
                             guest_api=vm.get("guest_api", ""),
                             seed_file=seed_file(state_dir.parent / SEED_FOLDER, vm["mac"]))
            for vm in vms}



def start_daemon(state_dir: Path, timeout: float = 30.0) -> dict[str, Any]:
    """Start the VM/BMC process in the background; returns its {pid, port}."""
    info_file = state_dir / "daemon.json"
    if info_file.exists():
        info: dict[str, Any] = json.loads(info_file.read_text())
        if _alive(int(info["pid"])):
            return info
        info_file.unlink()
    log = (state_dir / "daemon.log").open("ab")
    subprocess.Popen([sys.executable, "-m", "metalfleet.lab.vm.daemon", str(state_dir)],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not info_file.exists():
        if time.monotonic() > deadline:
            raise VmError(f"the VM lab process did not start; see {state_dir / 'daemon.log'}")
        time.sleep(0.2)
    started: dict[str, Any] = json.loads(info_file.read_text())
    return started


def stop_daemon(state_dir: Path, timeout: float = 30.0) -> bool:
    info_file = state_dir / "daemon.json"
    if not info_file.exists():
        return False
    pid = int(json.loads(info_file.read_text())["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    info_file.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def node_bodies(vms: list[dict[str, Any]], bmc_port: int) -> list[dict[str, Any]]:
    return [{
        "name": vm["name"],
        "hardware_type": "redfish",
        "bmc": {"driver": "redfish",
                "address": f"http://127.0.0.1:{bmc_port}/redfish/v1/Systems/{vm['id']}",
                "username": vm["username"], "password": vm["password"]},
        "ports": [{"name": "eth0", "mac": vm["mac"], "pxe": True}],
        "driver_info": {"burn_in_seconds": 2, "agent_boot_timeout_s": 300,
                        "inspect_interface": "agent"},
        "labels": {"metalfleet.io/vm-lab": "true"},
    } for vm in vms]
