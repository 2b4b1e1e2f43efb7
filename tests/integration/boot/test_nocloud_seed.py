"""The NoCloud seed metalfleet serves, checked by cloud-init itself (Debian's cloud-init)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.boot import nocloud_seeds
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.conftest import fake_node

PARSE_NETWORK = """
import json, sys, yaml
from cloudinit.net.network_state import parse_net_config_data
state = parse_net_config_data(yaml.safe_load(open(sys.argv[1])))
print(json.dumps([{k: i.get(k) for k in ("name", "mtu", "mac_address", "vlan_id")}
                  for i in state.iter_interfaces()]))
"""


def _cloud_init() -> str:
    path = shutil.which("cloud-init")
    if path is None:
        pytest.fail("cloud-init is missing: install the Debian package cloud-init")
    return path


def test_seed_is_valid_for_cloud_init(client: TestClient, context: AppContext,
                                      tmp_path: Path) -> None:
    tool = _cloud_init()
    client.post("/v1/tenants", json={"name": "acme", "ssh_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4rT3vTt99Ox5kndS4HmgTrKBT8SKzhK4rhGkEVGlCI ops"]})
    client.post("/v1/networks", json={"name": "prov", "role": "provisioning",
                                      "cidr": "10.20.0.0/24"})
    client.post("/v1/networks", json={"name": "data", "role": "data", "cidr": "10.30.0.0/24",
                                      "vlan_id": 30, "mtu": 9000})
    body = fake_node("n1", "52:54:00:00:00:01", tenant="acme")
    body["ports"] = [
        {"name": "eth0", "mac": "52:54:00:00:00:01", "network": "prov", "pxe": True},
        {"name": "eth1", "mac": "52:54:00:00:00:02", "network": "data"},
    ]
    assert client.post("/v1/nodes", json=body).status_code == 201
    with context.db.session() as session:  # as the conductor does when the deploy starts
        node = session.scalar(select(m.Node).where(m.Node.name == "n1"))
        assert node is not None
        node.state = "deploying"
        seed = f"/v1/nocloud/{nocloud_seeds.issue(session, node)}"

    meta = client.get(f"{seed}/meta-data")
    assert meta.status_code == 200 and "local-hostname: n1" in meta.text
    user = client.get(f"{seed}/user-data").text
    assert user.startswith("#cloud-config") and "ssh-ed25519" in user
    (tmp_path / "user-data").write_text(user)
    checked = subprocess.run([tool, "schema", "-c", str(tmp_path / "user-data")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "Valid cloud-config" in checked.stdout, checked.stderr

    network = client.get(f"{seed}/network-config").text
    (tmp_path / "network-config").write_text(network)
    parsed = subprocess.run(["/usr/bin/python3", "-c", PARSE_NETWORK,
                             str(tmp_path / "network-config")],
                            capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    interfaces = {i["name"]: i for i in json.loads(parsed.stdout)}
    assert interfaces["eth0"]["mac_address"] == "52:54:00:00:00:01"
    assert interfaces["eth1.30"]["vlan_id"] == 30 and interfaces["eth1.30"]["mtu"] == 9000
    assert interfaces["eth1"]["mtu"] == 9000

    events = client.get("/v1/nodes/n1/events").json()["items"]
    assert [e["kind"] for e in events].count("first-boot") == 1
    assert client.get(f"{seed}/meta-data").status_code == 200  # cloud-init may ask again
    assert [e["kind"] for e in client.get("/v1/nodes/n1/events").json()["items"]
            ].count("first-boot") == 1
