"""Benchmark: how long a node waits for its tenant network, per node and for N nodes at once.

A Linux-bridge switch in a network namespace with ``--nodes`` ports (veth pairs; the far end
stays in the root namespace, down: only the switch side matters to the driver). Two parts,
one run, root needed:

1. Driver: every port moved from provisioning to a tenant network, one after another, by
   ``BridgePerNetwork`` over the local transport and over SSH (netmiko to sshd running inside
   the switch namespace; one connection): seconds per port move, including the read-back.
2. Lifecycle: ``--nodes`` fake nodes (instant BMC and deploy) of one tenant, each with one
   port on that switch, deployed at once through the API and one conductor with
   ``--workers`` threads: wall time to all active, and per node the time from the deploy
   request to its "ports ... on tenant" event (tenant network live) and its move's own time.

    sudo .venv/bin/python bench/port_moves.py --nodes 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from metalfleet.api.app import create_app
from metalfleet.conductor.worker import Conductor
from metalfleet.config import Settings
from metalfleet.lab import plugin
from metalfleet.network.linux_bridge import BridgePerNetwork
from metalfleet.network.switch import Segment
from metalfleet.network.transport import LocalTransport, SshTransport, Transport
from metalfleet.server import bootstrap

SSHD = """Port 2222
ListenAddress {address}
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
StrictModes no
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def move_all(transport: Transport, ports: int) -> float:
    driver = BridgePerNetwork(transport)
    for i in range(ports):  # all on provisioning first, untimed
        driver.move_port(f"sp{i}", Segment("prov", 10))
    started = time.perf_counter()
    for i in range(ports):
        driver.move_port(f"sp{i}", Segment("tenant", 1000))
    return (time.perf_counter() - started) / ports


def ssh_transport(namespace: str, tmp: Path) -> tuple[SshTransport, subprocess.Popen[bytes],
                                                     str]:
    sh("ip", "link", "add", "mfbm0", "type", "veth", "peer", "name", "mgmt0", "netns",
       namespace)
    sh("ip", "addr", "add", "10.97.0.2/30", "dev", "mfbm0")
    sh("ip", "link", "set", "mfbm0", "up")
    sh("ip", "-n", namespace, "addr", "add", "10.97.0.1/30", "dev", "mgmt0")
    sh("ip", "-n", namespace, "link", "set", "mgmt0", "up")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "host_key"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "client_key"))
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    (tmp / "sshd_config").write_text(SSHD.format(address="10.97.0.1", dir=tmp))
    Path("/run/sshd").mkdir(exist_ok=True)
    server = subprocess.Popen(["ip", "netns", "exec", namespace, "/usr/sbin/sshd", "-D", "-f",
                               str(tmp / "sshd_config")])
    time.sleep(1.0)
    return (SshTransport(host="10.97.0.1", port=2222, username="root",
                         key_file=str(tmp / "client_key")), server, "mfbm0")


def lifecycle(namespace: str, nodes: int, workers: int, tmp: Path) -> dict[str, Any]:
    data = tmp / "data"
    context = bootstrap(Settings(data_dir=data, database_url=f"sqlite:///{data / 'mf.db'}"))
    plugin.enable(context)  # a local (namespace) switch is a lab shortcut
    conductor = Conductor(context.db, context.cipher, name="bench", workers=workers,
                          poll_interval_s=0.02, port_sweep_s=0)
    with TestClient(create_app(context)) as client:
        token = (data / "admin.token").read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        client.post("/v1/switches", json={"name": "leaf", "role": "leaf", "fabric": "ethernet"})
        client.put("/v1/switches/leaf/access", json={"driver": "linux-bridge",
                                                     "driver_info": {"netns": namespace}})
        client.post("/v1/networks", json={"name": "prov", "role": "provisioning",
                                          "vlan_id": 10, "cidr": "10.10.0.0/24"})
        client.post("/v1/tenants", json={"name": "acme"})
        client.post("/v1/images", json={"name": "img", "location": "http://i.example/i.raw",
                                        "sha256": "0" * 64, "size_bytes": 1024})
        names = [f"n{i:03d}" for i in range(nodes)]
        for i, name in enumerate(names):
            r = client.post("/v1/nodes", json={
                "name": name, "tenant": "acme", "hardware_type": "fake",
                "bmc": {"driver": "fake", "address": f"fake://{name}"},
                "ports": [{"name": "eth0", "mac": f"52:54:00:10:{i // 256:02x}:{i % 256:02x}",
                           "pxe": True, "switch": "leaf", "switch_port": f"sp{i}"}]})
            assert r.status_code == 201, r.text

        def settle(action: str, state: str, body: dict[str, Any] | None = None) -> float:
            started = time.perf_counter()
            for name in names:
                r = client.post(f"/v1/nodes/{name}/actions/{action}", json=body)
                assert r.status_code == 202, r.text

            async def loop() -> None:
                deadline = time.monotonic() + 120 + nodes
                while True:
                    if time.monotonic() > deadline:
                        states = [n["state"] for n in client.get(
                            "/v1/nodes", params={"limit": 1000}).json()["items"]]
                        errors = {n["last_error"] for n in client.get(
                            "/v1/nodes", params={"limit": 1000}).json()["items"]}
                        raise SystemExit(f"{action}: not all {state}: {states} {errors}")
                    await conductor.tick()
                    await asyncio.sleep(0.02)
                    page = client.get("/v1/nodes", params={"state": state,
                                                           "limit": 1000}).json()["items"]
                    if len(page) == nodes and not conductor._running:
                        return

            asyncio.run(loop())
            return time.perf_counter() - started

        for action, state in (("manage", "manageable"), ("inspect", "inspected"),
                              ("provide", "available")):
            settle(action, state)
        wall = settle("deploy", "active", {"image": "img"})
        waits, moves = [], []
        for name in names:
            items = client.get(f"/v1/nodes/{name}/events", params={"limit": 500}).json()["items"]
            start = max(datetime.fromisoformat(e["time"]) for e in items
                        if e["to_state"] == "deploying")
            live = min(datetime.fromisoformat(e["time"]) for e in items
                       if e["kind"] == "network" and "tenant-acme" in e["message"]
                       and datetime.fromisoformat(e["time"]) > start)
            begun = max(datetime.fromisoformat(e["time"]) for e in items
                        if e["kind"] == "network" and "prov" in e["message"]
                        and datetime.fromisoformat(e["time"]) > start)
            waits.append((live - start).total_seconds())
            moves.append((live - begun).total_seconds())
    waits.sort()
    return {"wall_s": round(wall, 2), "p50_s": round(statistics.median(waits), 3),
            "p95_s": round(waits[int(len(waits) * 0.95) - 1], 3),
            "max_s": round(waits[-1], 3),
            "move_median_s": round(statistics.median(moves), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    namespace = f"mfbench-{uuid.uuid4().hex[:6]}"
    server = None
    try:
        sh("ip", "netns", "add", namespace)
        for i in range(args.nodes):
            sh("ip", "-n", namespace, "link", "add", f"sp{i}", "type", "veth", "peer", "name",
               f"hp{i}")
        with tempfile.TemporaryDirectory() as raw:
            tmp = Path(raw)
            local = move_all(LocalTransport(netns=namespace), args.nodes)
            ssh, server, _ = ssh_transport(namespace, tmp)
            over_ssh = move_all(ssh, args.nodes)
            ssh.close()
            print(f"driver, one port move incl. read-back: local {local * 1000:.1f} ms, "
                  f"SSH {over_ssh * 1000:.1f} ms ({args.nodes} ports, sequential)")
            sh("ip", "netns", "del", namespace)  # fresh ports for the lifecycle run
            sh("ip", "netns", "add", namespace)
            for i in range(args.nodes):
                sh("ip", "-n", namespace, "link", "add", f"sp{i}", "type", "veth", "peer",
                   "name", f"hp{i}")
            result = lifecycle(namespace, args.nodes, args.workers, tmp)
            print(f"lifecycle, {args.nodes} fake nodes deployed at once, {args.workers} "
                  f"conductor workers: all active in {result['wall_s']} s; deploy request "
                  f"to tenant network live p50 {result['p50_s']} s, p95 {result['p95_s']} s, "
                  f"max {result['max_s']} s; the tenant move itself (median) "
                  f"{result['move_median_s']} s")
    finally:
        if server is not None:
            server.terminate()
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", "mfbm0"], capture_output=True)


if __name__ == "__main__":
    main()
