"""Benchmark: end-to-end deploy time on QEMU VMs (TCG), 1 VM and N at once, with the floor
measured alongside in the same run.

It starts `metalfleet up` (SQLite) and `metalfleet lab vms --count N` in a scratch data dir,
takes the VMs to available (manage, inspect, provide: timed, informative), then measures:

- the floor, each part on its own, for 1 VM and for N at once:
  ramdisk boot   QEMU direct-kernel boot of the deploy ramdisk until its agent's lookup POST
                 (no firmware, no iPXE, no download: less than a real PXE boot);
  raw write      `dd bs=4M conv=fsync` of the vm-tiny image to a fresh sparse disk file
                 on the host (no download, no hashing, page-cache target);
  disk boot      QEMU boot of a disk holding vm-tiny until it fetches its meta-data;
- the deploy: POST deploy until the node is `active`, and until the deployed OS fetched its
  meta-data (the first-boot event), for vm-01 alone, then for all N at once.

    .venv/bin/python bench/vm_deploy.py --vms 3
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from metalfleet.boot.ipxe import RAMDISK_INITRD, RAMDISK_KERNEL
from metalfleet.lab.vm.machines import qemu_binary

BIN = Path(sys.executable).parent
WORK_STATES = ("verifying", "inspecting", "burning-in", "deploying", "releasing", "cleaning")
TIMEOUT_S = 900.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Floor(http.server.ThreadingHTTPServer):
    """Records when each floor VM reached its goal: the agent's lookup or the meta-data GET."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FloorHandler)
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def mark(self, key: str) -> None:
        with self.lock:
            self.seen.setdefault(key, time.monotonic())


class FloorHandler(http.server.BaseHTTPRequestHandler):
    server: Floor

    def _answer(self, body: bytes, kind: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # the ramdisk's agent: /<key>/v1/agent/lookup
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.mark(self.path.split("/")[1])
        # No token: the agent has nothing to do (as for a discovered node) and powers off.
        self._answer(json.dumps({"node": "floor", "token": None,
                                 "heartbeat_interval_s": 2}).encode())

    def do_GET(self) -> None:  # vm-tiny's NoCloud fetches: /<key>/meta-data, /<key>/user-data
        key = self.path.split("/")[1]
        if self.path.endswith("meta-data"):
            self.server.mark(key)
        self._answer(f"instance-id: {key}\nlocal-hostname: {key}\n".encode(), "text/plain")

    def log_message(self, *args: Any) -> None:
        pass


def qemu(args: list[str], mac: str, disk: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [qemu_binary(), "-accel", "tcg", "-m", "384", "-smp", "1", "-display", "none",
         "-monitor", "none", "-no-reboot", "-serial", f"file:{log}",
         "-netdev", "user,id=n0", "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
         "-drive", f"file={disk},if=virtio,format=raw", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sparse_disk(path: Path, image: Path | None = None) -> Path:
    path.unlink(missing_ok=True)
    if image is not None:
        shutil.copyfile(image, path)
    with path.open("r+b" if image is not None else "wb") as handle:
        handle.truncate(4 * 1024**3)
    return path


def floor_boots(floor: Floor, work: Path, data: Path, count: int,
                kind: str) -> list[float]:
    """Boot ``count`` floor VMs at once; seconds until each reached its goal."""
    port = floor.server_address[1]
    started, processes = {}, []
    for index in range(count):
        key = f"{kind}-{count}-{index}"
        mac = f"52:54:00:6d:70:{index:02x}"
        log = work / f"{key}.console.log"
        if kind == "ramdisk":
            disk = sparse_disk(work / f"{key}.raw")
            args = ["-kernel", str(data / "ramdisk" / RAMDISK_KERNEL),
                    "-initrd", str(data / "ramdisk" / RAMDISK_INITRD),
                    "-append", f"console=ttyS0 quiet metalfleet.api=http://10.0.2.2:{port}/{key}"
                               " metalfleet.mode=discover"]
        else:
            disk = sparse_disk(work / f"{key}.raw", data / "images" / "vm-tiny.raw")
            args = ["-boot", "order=c", "-smbios",
                    f"type=1,serial=ds=nocloud-net;s=http://10.0.2.2:{port}/{key}/"]
        started[key] = time.monotonic()
        processes.append(qemu(args, mac, disk, log))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not all(key in floor.seen for key in started):
            if time.monotonic() > deadline:
                raise SystemExit(f"floor {kind} x{count} did not finish; see {work}/*.console.log")
            time.sleep(0.1)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return [floor.seen[key] - started[key] for key in started]


def dd_writes(work: Path, image: Path, count: int) -> list[float]:
    def one(index: int) -> float:
        target = sparse_disk(work / f"dd-{count}-{index}.raw")
        began = time.monotonic()
        subprocess.run(["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync,notrunc",
                        "status=none"], check=True)
        return time.monotonic() - began

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


class Fleet:
    def __init__(self, url: str, token: str) -> None:
        self.api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                timeout=30)

    def node(self, name: str) -> dict[str, Any]:
        node: dict[str, Any] = self.api.get(f"/v1/nodes/{name}").json()
        return node

    def act(self, name: str, action: str, body: dict[str, Any] | None = None,
            until_callback: bool = False) -> tuple[float, float | None]:
        """Seconds until the step ended (and until the first-boot event, when asked)."""
        booted_before = self._first_boots(name) if until_callback else 0
        began = time.monotonic()
        answer = self.api.post(f"/v1/nodes/{name}/actions/{action}", json=body or {})
        if answer.status_code != 202:
            raise SystemExit(f"{action} {name}: {answer.text}")
        deadline = began + TIMEOUT_S
        while (node := self.node(name))["reservation"] or node["state"] in WORK_STATES:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} stuck in {node['state']}")
            time.sleep(0.25)
        done = time.monotonic() - began
        if node["last_error"] and node["state"].endswith("failed"):
            raise SystemExit(f"{action} {name} failed: {node['last_error']}")
        if not until_callback:
            return done, None
        while self._first_boots(name) <= booted_before:  # every meta-data GET is one
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}'s deployed OS never fetched its meta-data")
            time.sleep(0.25)
        return done, time.monotonic() - began

    def _first_boots(self, name: str) -> int:
        events = self.api.get(f"/v1/nodes/{name}/events", params={"limit": 1000}).json()
        return sum(1 for event in events["items"] if event["kind"] == "first-boot")

    def everywhere(self, names: list[str], step: Callable[[str], Any]) -> list[Any]:
        with ThreadPoolExecutor(len(names)) as pool:
            return list(pool.map(step, names))


def step_time(fleet: Fleet, action: str, name: str) -> float:
    return fleet.act(name, action)[0]


def seconds(values: list[float]) -> str:
    return " ".join(f"{v:6.1f}" for v in values)


def run(work: Path, count: int) -> None:
    data = work / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "up.log").open("ab")
    up = subprocess.Popen([str(BIN / "metalfleet"), "up", "--lab", "0", "--port", str(port),
                           "--data-dir", str(data), "--database-url",
                           f"sqlite:///{work / 'mf.db'}"], stdout=log, stderr=log)
    env = {**os.environ, "METALFLEET_URL": url}
    env.pop("METALFLEET_TOKEN", None)
    floor = Floor()
    threading.Thread(target=floor.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or up.poll() is not None:
                raise SystemExit(f"metalfleet up did not start; see {work / 'up.log'}")
            time.sleep(0.3)
        subprocess.run([str(BIN / "metalfleet"), "--data-dir", str(data), "lab", "vms",
                        "--count", str(count), "--data-dir", str(data)],
                       check=True, env=env, capture_output=True, timeout=600)
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start "
              "(other work on the machine slows TCG VMs down)")
        fleet = Fleet(url, (data / "admin.token").read_text().strip())
        names = [f"vm-{index:02d}" for index in range(1, count + 1)]
        for action in ("manage", "inspect", "provide"):
            times = fleet.everywhere(names, functools.partial(step_time, fleet, action))
            print(f"prepare {action:8s} x{count} at once   {seconds(times)} s")

        image = data / "images" / "vm-tiny.raw"
        floors: dict[int, list[float]] = {}
        for n in sorted({1, count}):
            ramdisk = floor_boots(floor, work, data, n, "ramdisk")
            write = dd_writes(work, image, n)
            disk = floor_boots(floor, work, data, n, "disk")
            floors[n] = [r + w + d for r, w, d in zip(ramdisk, write, disk, strict=True)]
            print(f"floor x{n}: ramdisk boot to lookup {seconds(ramdisk)} s | dd write "
                  f"{seconds(write)} s | disk boot to meta-data {seconds(disk)} s | "
                  f"sum {seconds(floors[n])} s")

        active, callback = fleet.act(names[0], "deploy", {"image": "vm-tiny"},
                                     until_callback=True)
        print(f"deploy x1: to active {active:6.1f} s, to first-boot callback "
              f"{callback or 0:6.1f} s   (floor {floors[1][0]:.1f} s)")
        undeploy, _ = fleet.act(names[0], "undeploy")
        print(f"undeploy x1 (with cleaning): {undeploy:6.1f} s")
        if count > 1:
            began = time.monotonic()
            results = fleet.everywhere(names, lambda n: fleet.act(
                n, "deploy", {"image": "vm-tiny"}, until_callback=True))
            wall = time.monotonic() - began
            print(f"deploy x{count} at once: to active {seconds([a for a, _ in results])} s, "
                  f"to callback {seconds([c for _, c in results])} s, wall {wall:.1f} s   "
                  f"(floor {seconds(floors[count])} s)")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        floor.shutdown()
        subprocess.run([str(BIN / "metalfleet"), "--data-dir", str(data), "lab", "vms",
                        "--stop", "--data-dir", str(data)], env=env, capture_output=True,
                       timeout=120, check=False)
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=3, help="how many VMs deploy at once")
    parser.add_argument("--work", default=None, help="scratch dir (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir")
    args = parser.parse_args()
    if args.work:
        run(Path(args.work), args.vms)
        return
    work = Path(tempfile.mkdtemp(prefix="metalfleet-vm-bench-"))
    try:
        run(work, args.vms)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
