"""Attacks on the NoCloud seed: read a node's SSH keys, hostname and network config, or
fake its first boot, as anyone on the provisioning network (who sees MACs, not secrets)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from metalfleet.boot import nocloud_seeds
from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.node_credential_models import NocloudSeed
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node

MAC = "52:54:00:00:00:01"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4rT3vTt99Ox5kndS4HmgTrKBT8SKzhK4rhGkEVGlCI ops"
KEY_BODY = KEY.split()[1]


@pytest.fixture
def handoffs() -> Iterator[list[nocloud_seeds.SeedHandoff]]:
    """The seed paths the conductor hands to the node's boot path, as a delivery sees them."""
    seen: list[nocloud_seeds.SeedHandoff] = []
    nocloud_seeds.register_delivery("test", seen.append)
    yield seen
    nocloud_seeds.unregister_delivery("test")


def _events(context: AppContext) -> int:
    with context.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(m.Event)) or 0)


def _state(client: TestClient) -> str:
    return str(client.get("/v1/nodes/n1").json()["state"])


def _deployed(client: TestClient, conductor: Conductor,
              handoffs: list[nocloud_seeds.SeedHandoff]) -> str:
    """n1 of tenant acme, deployed by the conductor; returns its seed path."""
    client.post("/v1/tenants", json={"name": "acme", "ssh_keys": [KEY]})
    assert client.post("/v1/nodes", json=fake_node("n1", MAC, tenant="acme")).status_code == 201
    client.post("/v1/images", json={"name": "img", "location": "http://images.example/i.raw"})
    for action, settled in (("manage", "manageable"), ("inspect", "inspected"),
                            ("provide", "available")):
        assert client.post(f"/v1/nodes/n1/actions/{action}").status_code == 202
        drive(conductor, lambda s=settled: _state(client) == s)
    assert client.post("/v1/nodes/n1/actions/deploy", json={"image": "img"}).status_code == 202
    drive(conductor, lambda: _state(client) == "active")
    assert [h.node for h in handoffs] == ["n1"] and handoffs[-1].macs == (MAC,)
    return handoffs[-1].path


def test_a_mac_or_a_wrong_secret_gets_nothing(
        client: TestClient, context: AppContext, conductor: Conductor,
        handoffs: list[nocloud_seeds.SeedHandoff]) -> None:
    path = _deployed(client, conductor, handoffs)
    before = _events(context)
    misses = [f"/v1/nocloud/{MAC}/user-data", f"/v1/nocloud/{MAC}/meta-data",
              "/v1/nocloud/52:54:00:99:99:99/meta-data", f"/v1/nocloud/{MAC.upper()}/user-data",
              f"{path[:-2]}x/user-data", "/v1/nocloud/x/vendor-data",
              f"/v1/nocloud/{MAC}/vendor-data"]
    answers = [client.get(url, headers={"Authorization": ""}) for url in misses]
    assert [a.status_code for a in answers] == [404] * len(misses)
    assert len({a.json()["detail"] for a in answers}) == 1  # a known MAC reads like any other
    assert all(KEY_BODY not in a.text and "n1" not in a.text for a in answers)
    assert _events(context) == before  # anonymous misses write no rows
    with context.db.session() as session:
        assert session.scalar(select(NocloudSeed.first_boot_at)) is None  # no fake first boot
    assert KEY_BODY in client.get(f"{path}user-data", headers={"Authorization": ""}).text


def test_the_seed_path_reaches_only_a_private_file(
        client: TestClient, context: AppContext, conductor: Conductor,
        handoffs: list[nocloud_seeds.SeedHandoff]) -> None:
    path = _deployed(client, conductor, handoffs)
    folder = context.settings.data_dir / nocloud_seeds.SEED_FOLDER
    handed = nocloud_seeds.seed_file(folder, MAC)
    assert handed.read_text().strip() == path  # what the node's boot path picks up
    assert stat.S_IMODE(handed.stat().st_mode) == 0o600
    assert stat.S_IMODE(context.settings.data_dir.stat().st_mode) == 0o700
    with context.db.session() as session:  # only the hash is stored
        stored = session.scalar(select(NocloudSeed.secret_hash))
    assert stored is not None and path.strip("/").split("/")[-1] not in stored
    events = client.get("/v1/nodes/n1/events").json()["items"]
    assert all(path not in str(e) for e in events)  # never in an event


def test_the_seed_is_gone_after_first_boot(
        client: TestClient, context: AppContext, conductor: Conductor,
        handoffs: list[nocloud_seeds.SeedHandoff]) -> None:
    path = _deployed(client, conductor, handoffs)
    assert "local-hostname: n1" in client.get(f"{path}meta-data").text  # the first boot
    assert KEY_BODY in client.get(f"{path}user-data").text  # cloud-init's next fetches
    with context.db.session() as session:
        seed = session.scalar(select(NocloudSeed))
        assert seed is not None and seed.first_boot_at is not None
        seed.first_boot_at = utcnow() - nocloud_seeds.FIRST_BOOT_WINDOW - timedelta(seconds=1)
    before = _events(context)
    for item in ("meta-data", "user-data", "network-config"):
        assert client.get(f"{path}{item}").status_code == 404
    assert _events(context) == before


def test_an_active_node_that_never_booted_loses_its_seed(
        client: TestClient, context: AppContext, conductor: Conductor,
        handoffs: list[nocloud_seeds.SeedHandoff]) -> None:
    path = _deployed(client, conductor, handoffs)
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "n1"))
        assert node is not None
        node.state_changed_at = utcnow() - nocloud_seeds.FIRST_BOOT_GRACE - timedelta(seconds=1)
    assert client.get(f"{path}user-data").status_code == 404


def test_undeploy_and_redeploy_end_the_old_seed(
        client: TestClient, context: AppContext, conductor: Conductor,
        handoffs: list[nocloud_seeds.SeedHandoff]) -> None:
    old = _deployed(client, conductor, handoffs)
    assert client.post("/v1/nodes/n1/actions/undeploy").status_code == 202
    assert client.get(f"{old}user-data").status_code == 404  # the tenancy ended
    drive(conductor, lambda: _state(client) == "available")
    with context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(NocloudSeed)) == 0
    assert client.post("/v1/nodes/n1/actions/deploy", json={"image": "img"}).status_code == 202
    drive(conductor, lambda: _state(client) == "active")
    new = handoffs[-1].path
    assert new != old and client.get(f"{old}meta-data").status_code == 404
    assert client.get(f"{new}meta-data").status_code == 200
