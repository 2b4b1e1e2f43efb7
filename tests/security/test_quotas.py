"""Attacks on tenant quotas: hold more of the fleet than the tenant was given.

Two ways in: a tenant that nobody gave a quota row (it used to mean "no limit"), and many
cluster creates at once, each counting the same "used" before any of them commits.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from metalfleet.core.errors import ConflictError
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from metalfleet.scheduling import allocation
from metalfleet.scheduling import schemas as cs
from tests.integration.scheduling.fleet import GPU_CLASS, build


def _held(context: AppContext, tenant: str) -> int:
    with context.db.session() as session:
        return int(session.scalar(
            select(func.count()).select_from(m.ClusterNode)
            .join(m.Cluster, m.Cluster.id == m.ClusterNode.cluster_id)
            .join(m.Tenant, m.Tenant.id == m.Cluster.tenant_id)
            .where(m.Tenant.name == tenant)) or 0)


def test_a_tenant_without_a_quota_row_gets_the_default(
        client: TestClient, context: AppContext) -> None:
    build(client, context, racks=[4])
    context.settings.default_quota_nodes = 2
    body = {"name": "greedy", "scheduler": "none", "node_class": GPU_CLASS, "count": 3,
            "tenant": "acme"}
    refused = client.post("/v1/clusters", json=body)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["title"] == "Quota exceeded" and "default quota" in problem["detail"]
    assert problem["quota"] == 2 and _held(context, "acme") == 0
    assert client.post("/v1/clusters", json={**body, "count": 2}).status_code == 201
    # An explicit quota row wins over the default.
    assert client.put(f"/v1/quotas/acme/{GPU_CLASS}",
                      json={"max_nodes": 3}).status_code in (200, 201)
    assert client.post("/v1/clusters", json={**body, "name": "more", "count": 1}
                       ).status_code == 201
    assert _held(context, "acme") == 3


def test_concurrent_creates_cannot_exceed_the_quota(
        client: TestClient, context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    build(client, context, racks=[8])
    assert client.put(f"/v1/quotas/acme/{GPU_CLASS}",
                      json={"max_nodes": 3}).status_code in (200, 201)
    counted = allocation.used_nodes

    def slow_count(*args: Any) -> int:  # widen the window between counting and taking
        used = counted(*args)
        time.sleep(0.3)
        return used

    monkeypatch.setattr(allocation, "used_nodes", slow_count)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def create(index: int) -> None:
        data = cs.ClusterIn.model_validate({"name": f"race-{index}", "scheduler": "none",
                                            "node_class": GPU_CLASS, "count": 2,
                                            "tenant": "acme"})
        start.wait()
        try:
            with context.db.session() as session:
                allocation.create_cluster(session, data, actor="attacker", default_quota=None)
            outcomes.append("created")
        except ConflictError as exc:
            outcomes.append(exc.title)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("created") == 1, outcomes
    assert outcomes.count("Quota exceeded") == 3, outcomes
    assert _held(context, "acme") == 2
