"""A Kubernetes cluster's manifests: labels and taints from the inventory, and every document
valid against the Kubernetes schemas (kubernetes-validate, offline, strict)."""

from __future__ import annotations

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from metalfleet.db import models as m
from metalfleet.runtime import AppContext
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


# MetalLB's CRDs (metallb.io/v1beta1, config/crd in github.com/metallb/metallb v0.14):
# kubernetes-validate only knows built-in kinds, so the custom resources are checked against
# these openAPIV3Schema excerpts (every spec field; unknown ones rejected).
_META = {"type": "object", "required": ["name", "namespace"],
         "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}
_SELECTOR = {"type": "object", "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array"}}, "additionalProperties": False}
METALLB = {
    "IPAddressPool": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
                      "properties": {
        "apiVersion": {"const": "metallb.io/v1beta1"}, "kind": {"const": "IPAddressPool"},
        "metadata": _META,
        "spec": {"type": "object", "required": ["addresses"], "additionalProperties": False,
                 "properties": {
                     "addresses": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                     "autoAssign": {"type": "boolean"}, "avoidBuggyIPs": {"type": "boolean"},
                     "serviceAllocation": {"type": "object"}}}}},
    "L2Advertisement": {"type": "object", "required": ["apiVersion", "kind", "metadata"],
                        "properties": {
        "apiVersion": {"const": "metallb.io/v1beta1"}, "kind": {"const": "L2Advertisement"},
        "metadata": _META,
        "spec": {"type": "object", "additionalProperties": False, "properties": {
            "ipAddressPools": {"type": "array", "items": {"type": "string"}},
            "ipAddressPoolSelectors": {"type": "array", "items": _SELECTOR},
            "nodeSelectors": {"type": "array", "items": _SELECTOR},
            "interfaces": {"type": "array", "items": {"type": "string"}}}}}},
}


def test_metallb_pool_from_ipam_and_kubeadm_join_files(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[2])
    r = client.post("/v1/networks", json={"name": "svc", "role": "data", "cidr": "10.40.0.0/24",
                                          "gateway": "10.40.0.1"})
    assert r.status_code == 201, r.text
    taken = client.post("/v1/networks/svc/allocations", json={"address": "10.40.0.4"})
    assert taken.status_code == 201, taken.text
    r = client.post("/v1/clusters", json={"name": "k8s", "scheduler": "kubernetes",
                                          "node_class": GPU_CLASS, "count": 2})
    assert r.status_code == 201
    settings = {"service_network": "svc", "service_addresses": 6,
                "api_server_endpoint": "10.40.0.10:6443",
                "ca_cert_hashes": ["sha256:" + "b" * 64]}
    r = client.patch("/v1/clusters/k8s", json={"scheduler_config": {"kubernetes": settings}})
    assert r.status_code == 200, r.text

    files = client.get("/v1/clusters/k8s/files").json()
    assert {"metallb.yaml", "kubeadm-join-gpu-r1-01.yaml", "kubeadm-join-gpu-r1-02.yaml"} <= set(
        files)
    pool, l2 = yaml.safe_load_all(files["metallb.yaml"])
    for doc in (pool, l2):
        jsonschema.validate(doc, METALLB[doc["kind"]])
    # The gateway and the address already taken are skipped; consecutive ones form ranges.
    assert pool["spec"]["addresses"] == ["10.40.0.2-10.40.0.3", "10.40.0.5-10.40.0.8"]
    assert l2["spec"]["ipAddressPools"] == [pool["metadata"]["name"]]
    assert l2["spec"]["nodeSelectors"] == [{"matchLabels": {"metalfleet.io/cluster": "k8s"}}]
    held = client.get("/v1/networks/svc/allocations").json()["items"]
    assert sum(1 for a in held if a["purpose"] == "metallb:k8s") == 6
    join = yaml.safe_load(files["kubeadm-join-gpu-r1-01.yaml"])
    assert join["kind"] == "JoinConfiguration"
    assert join["nodeRegistration"]["name"] == "gpu-r1-01"
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.40.0.10:6443"

    # Fewer addresses: the pool shrinks, keeping what it had; an unknown network is 422.
    settings["service_addresses"] = 2
    client.patch("/v1/clusters/k8s", json={"scheduler_config": {"kubernetes": settings}})
    pool = next(yaml.safe_load_all(client.get("/v1/clusters/k8s/files").json()["metallb.yaml"]))
    assert pool["spec"]["addresses"] == ["10.40.0.2-10.40.0.3"]
    r = client.patch("/v1/clusters/k8s", json={"scheduler_config": {"kubernetes": {
        "service_network": "nope"}}})
    assert r.status_code == 422 and "GET /v1/networks" in r.json()["detail"]
    assert client.delete("/v1/clusters/k8s").status_code == 204
    held = client.get("/v1/networks/svc/allocations").json()["items"]
    assert [a["address"] for a in held] == ["10.40.0.4"]
