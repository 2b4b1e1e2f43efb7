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
