"""Attacks on secrets: learn a BMC password, a BMC's address, or how a scheduler is reached.

A fleet plan that compares a given password with the stored one is an oracle: anyone who may
plan can test guesses. Member tokens are tenants: they must not learn where a node's BMC is
or how metalfleet reaches their cluster's scheduler.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from metalfleet.secrets import CredentialCipher
from tests.conftest import fake_node


def _fleet(password: str | None) -> dict[str, Any]:
    node = fake_node("n1", "52:54:00:00:00:01")
    if password is None:
        node["bmc"].pop("password")
    else:
        node["bmc"]["password"] = password
    return {"version": 1, "nodes": [node]}


def _plan(client: TestClient, fleet: dict[str, Any]) -> Any:
    r = client.post("/v1/fleet/plan", json={"fleet": fleet})
    assert r.status_code == 200, r.text
    return r.json()


def _stored(context: AppContext) -> str | None:
    with context.db.session() as session:
        value = session.scalar(select(m.Node.bmc_password_encrypted).where(m.Node.name == "n1"))
    return None if value is None else context.cipher.decrypt(value)


def test_plan_is_no_password_oracle(client: TestClient, context: AppContext,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.post("/v1/fleet/apply", json={"fleet": _fleet("right-pw")}).status_code == 200

    def no_decrypt(self: CredentialCipher, token: str) -> str:
        raise AssertionError("plan decrypted a stored BMC password")

    monkeypatch.setattr(CredentialCipher, "decrypt", no_decrypt)
    right, wrong = _plan(client, _fleet("right-pw")), _plan(client, _fleet("wrong-guess"))
    assert right == wrong  # the same answer whether the guess is right or not
    (change,) = right["changes"]
    assert change["action"] == "update"
    assert change["fields"] == {"bmc.password": {"old": None, "new": None,
                                                 "note": "will be set (not compared)"}}
    assert "right-pw" not in str(right) and "wrong-guess" not in str(wrong)
    monkeypatch.undo()
    assert _stored(context) == "right-pw"  # plan changed nothing


def test_a_file_without_the_password_keeps_it_and_null_removes_it(
        client: TestClient, context: AppContext) -> None:
    assert client.post("/v1/fleet/apply", json={"fleet": _fleet("right-pw")}).status_code == 200
    kept = _fleet(None)
    assert [c["action"] for c in _plan(client, kept)["changes"]] == ["unchanged"]
    kept["nodes"][0]["bmc"]["address"] = "fake://moved"
    assert client.post("/v1/fleet/apply", json={"fleet": kept}).status_code == 200
    assert _stored(context) == "right-pw"
    # PATCH alike: a new address does not need the secret resent.
    r = client.patch("/v1/nodes/n1", json={"bmc": {"driver": "fake", "address": "fake://n1"}})
    assert r.status_code == 200, r.text
    assert _stored(context) == "right-pw"
    removed = _fleet(None)
    removed["nodes"][0]["bmc"]["password"] = None
    (change,) = _plan(client, removed)["changes"]
    assert change["fields"]["bmc.password"]["note"] == "password removed"
    assert client.post("/v1/fleet/apply", json={"fleet": removed}).status_code == 200
    assert _stored(context) is None


def _token(client: TestClient, role: str, tenant: str | None = None) -> dict[str, str]:
    body = {"name": f"{role}-{tenant or 'all'}", "role": role}
    if tenant:
        body["tenant"] = tenant
    r = client.post("/v1/tokens", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_members_never_see_a_bmc_or_how_a_scheduler_is_reached(
        client: TestClient, context: AppContext) -> None:
    client.post("/v1/tenants", json={"name": "acme"})
    client.post("/v1/node-classes", json={"name": "gpu"})
    node = fake_node("n1", "52:54:00:00:00:01", tenant="acme", node_class="gpu")
    node["bmc"].update(address="fake://10.9.8.7", username="bmc-root")
    assert client.post("/v1/nodes", json=node).status_code == 201
    with context.db.session() as session:
        row = session.scalars(select(m.Node).where(m.Node.name == "n1")).one()
        row.state = "available"
    r = client.post("/v1/clusters", json={"name": "c1", "scheduler": "slurm",
                                          "node_class": "gpu", "count": 1, "tenant": "acme"})
    assert r.status_code == 201, r.text
    config = {"slurm": {"conf": "/etc/slurm/slurm.conf",
                        "prefix": ["ssh", "slurm@head", "--password=hunter2"]}}
    assert client.patch("/v1/clusters/c1", json={"scheduler_config": config}).status_code == 200
    with context.db.session() as session:  # keys no allow-list names (as if a later
        cluster = session.scalars(select(m.Cluster).where(m.Cluster.name == "c1")).one()
        cluster.scheduler_config = {"slurm": {**config["slurm"], "new_secret": "s3"},
                                    "vault": {"token": "s4"}}  # version stored them): hidden
        row = session.scalars(select(m.Node).where(m.Node.name == "n1")).one()
        row.reservation = "conductor-7"

    member = _token(client, "member", "acme")
    for shown in (client.get("/v1/nodes/n1", headers=member).json(),
                  client.get("/v1/nodes", headers=member).json()["items"][0]):
        assert shown["bmc"] is None and shown["reservation"] is None
        assert shown["name"] == "n1" and shown["tenant"] == "acme"
    for shown in (client.get("/v1/clusters/c1", headers=member).json(),
                  client.get("/v1/clusters", headers=member).json()["items"][0]):
        assert shown["scheduler_config"] is None and shown["nodes"][0]["name"] == "n1"
    everything = " ".join(client.get(path, headers=member).text for path in (
        "/v1/nodes/n1", "/v1/nodes", "/v1/clusters/c1", "/v1/clusters",
        "/v1/ansible/inventory", "/v1/nodes/n1/events", "/v1/events"))
    for secret in ("10.9.8.7", "bmc-root", "conductor-7", "slurm@head", "s3cret-pw"):
        assert secret not in everything, secret

    for staff in ({}, _token(client, "operator"), _token(client, "viewer")):
        shown = client.get("/v1/nodes/n1", headers=staff).json()
        assert shown["bmc"] == {"driver": "fake", "address": "fake://10.9.8.7",
                                "username": "bmc-root", "verify_tls": True, "error": None}
        assert shown["reservation"] == "conductor-7"
        cluster_out = client.get("/v1/clusters/c1", headers=staff).json()
        assert cluster_out["scheduler_config"] == {"slurm": {
            "conf": "/etc/slurm/slurm.conf",
            "prefix": ["ssh", "slurm@head", "--password=***"]}}  # allow-listed keys only
        assert "s3cret-pw" not in str(shown) and "hunter2" not in str(cluster_out)


def test_the_dashboard_shows_members_no_bmc(client: TestClient, context: AppContext) -> None:
    client.post("/v1/tenants", json={"name": "acme"})
    node = fake_node("n1", "52:54:00:00:00:01", tenant="acme")
    node["bmc"]["address"] = "fake://10.9.8.7"
    assert client.post("/v1/nodes", json=node).status_code == 201
    member = _token(client, "member", "acme")["Authorization"].removeprefix("Bearer ")
    admin = (context.settings.data_dir / "admin.token").read_text().strip()
    with TestClient(client.app) as web:
        pages = {}
        for who, token in (("member", member), ("admin", admin)):
            web.post("/ui/login", data={"token": token, "next": "/"},
                     headers={"Origin": "http://testserver"})
            page = web.get("/ui/nodes/n1")
            assert page.status_code == 200
            pages[who] = page.text
    assert "10.9.8.7" not in pages["member"] and "10.9.8.7" in pages["admin"]


def test_every_withheld_field_can_be_withheld() -> None:
    """An allow-list names every field each reader sees; a field some reader does not see
    must be optional in the schema, so the answer stays valid without it."""
    from metalfleet import policy

    for model, staff in policy._STAFF_VIEW.items():
        member = policy._MEMBER_VIEW[model]
        assert set(staff) == set(model.model_fields), model.__name__
        for name in set(staff) - set(member):
            assert model.model_fields[name].default is None, (model.__name__, name)
