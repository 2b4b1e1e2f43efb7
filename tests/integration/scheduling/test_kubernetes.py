"""A Kubernetes cluster's manifests: labels and taints from the inventory, and every document
valid against the Kubernetes schemas (kubernetes-validate, offline, strict)."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from metalfleet.api.deps import AppContext
from metalfleet.db import models as m
from tests.integration.scheduling.fleet import GPU_CLASS, build

K8S_VERSIONS = ["1.29", "1.31"]


def test_manifests_validate_and_carry_labels_and_taints(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[2, 1])
    with context.db.session() as session:
        session.execute(update(m.Node).where(m.Node.name == "gpu-r1-02")
                        .values(health="degraded"))
    r = client.post("/v1/clusters", json={"name": "k8s", "scheduler": "kubernetes",
                                          "node_class": GPU_CLASS, "count": 2,
                                          "tenant": "acme"})
    assert r.status_code == 201, r.text
    files = client.get("/v1/clusters/k8s/files").json()
    assert set(files) == {"nodes.yaml", "nvidia-device-plugin.yaml",
                          "node-feature-discovery.yaml"}
    documents = 0
    for name, text in files.items():
        for doc in yaml.safe_load_all(text):
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{name} {doc['kind']} invalid for {version}: {exc}")
            documents += 1
    assert documents >= 9
    nodes = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(files["nodes.yaml"])}
    assert set(nodes) == {"gpu-r1-01", "gpu-r1-02"}
    labels = nodes["gpu-r1-01"]["metadata"]["labels"]
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["metalfleet.io/infiniband"] == "true"
    assert labels["metalfleet.io/ib-rate-gbps"] == "400"
    assert labels["metalfleet.io/rack"] == "rack-1"
    assert labels["metalfleet.io/class"] == GPU_CLASS
    assert labels["metalfleet.io/tenant"] == "acme" and labels["metalfleet.io/cluster"] == "k8s"
    assert labels["metalfleet.io/leaf-switch"] == "ib-leaf-1"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in (
        nodes["gpu-r1-01"]["spec"]["taints"])
    assert {"key": "metalfleet.io/unhealthy", "value": "degraded", "effect": "NoSchedule"} in (
        nodes["gpu-r1-02"]["spec"]["taints"])


def test_a_cluster_without_scheduler_has_nothing_to_render(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[1])
    client.post("/v1/clusters", json={"name": "raw", "node_class": GPU_CLASS, "count": 1})
    r = client.get("/v1/clusters/raw/files")
    assert r.status_code == 422 and "nothing to render" in r.json()["detail"]
