"""Attack on /metrics: learn who rents the fleet (tenant names, node counts per tenant) from
the anonymous scrape endpoint."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from metalfleet.config import Settings
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.conftest import fake_node


def _rent(client: TestClient, context: AppContext) -> None:
    assert client.post("/v1/tenants", json={"name": "secret-customer"}).status_code == 201
    body = fake_node("g1", "52:54:00:00:00:01", tenant="secret-customer")
    assert client.post("/v1/nodes", json=body).status_code == 201
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "g1"))
        assert node is not None
        node.state = "active"


def _node_samples(text: str) -> list[dict[str, str]]:
    return [dict(s.labels) for f in text_string_to_metric_families(text)
            if f.name == "metalfleet_nodes" for s in f.samples]


def test_anonymous_scrape_names_no_tenant(client: TestClient, context: AppContext) -> None:
    _rent(client, context)
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert "secret-customer" not in response.text
    samples = _node_samples(response.text)
    assert samples and all("tenant" not in labels for labels in samples)


def test_the_operator_can_turn_tenant_labels_on(client: TestClient,
                                                context: AppContext) -> None:
    _rent(client, context)
    context.settings.metrics_tenant_labels = True
    samples = _node_samples(client.get("/metrics", headers={"Authorization": ""}).text)
    assert {"state": "active", "health": "ok", "class": "", "tenant": "secret-customer"} in samples


@pytest.mark.parametrize(("value", "expected"), [("", False), ("0", False), ("off", False),
                                                 ("1", True), ("true", True), ("YES", True)])
def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                                expected: bool) -> None:
    monkeypatch.setenv("METALFLEET_METRICS_TENANT_LABELS", value)
    assert Settings().metrics_tenant_labels is expected


def test_a_garbled_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALFLEET_METRICS_TENANT_LABELS", "maybe")
    with pytest.raises(ValueError, match="METALFLEET_METRICS_TENANT_LABELS"):
        Settings()
