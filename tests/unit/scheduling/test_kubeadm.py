"""kubeadm JoinConfiguration: kubernetes-validate has no kubeadm types, so the structure is
checked here against kubeadm's v1beta4 fields (k8s.io/kubernetes cmd/kubeadm/app/apis/kubeadm/
v1beta4/types.go: JoinConfiguration, NodeRegistrationOptions, Discovery, BootstrapTokenDiscovery,
Arg, core/v1 Taint)."""

from __future__ import annotations

from typing import Any

import pytest

from metalfleet.db import models as m
from metalfleet.scheduling.kubernetes.kubeadm import (
    TOKEN_PLACEHOLDER,
    join_configuration,
    kubelet_labels,
)

TAINT = {"key": str, "value": str, "effect": str, "timeAdded": str}
V1BETA4: dict[str, Any] = {
    "apiVersion": str, "kind": str, "dryRun": bool, "caCertPath": str, "skipPhases": list,
    "controlPlane": dict, "patches": dict, "timeouts": dict,
    "nodeRegistration": {
        "name": str, "criSocket": str, "taints": [TAINT], "kubeletExtraArgs": [
            {"name": str, "value": str}],
        "ignorePreflightErrors": [str], "imagePullPolicy": str, "imagePullSerial": bool,
    },
    "discovery": {
        "bootstrapToken": {"token": str, "apiServerEndpoint": str, "caCertHashes": [str],
                           "unsafeSkipCAVerification": bool},
        "file": dict, "tlsBootstrapToken": str,
    },
}
REQUIRED = [("discovery", "bootstrapToken", "token"),
            ("discovery", "bootstrapToken", "apiServerEndpoint"), ("nodeRegistration", "name")]


def check(doc: Any, schema: Any, path: str = "") -> None:
    if isinstance(schema, dict):
        assert isinstance(doc, dict), f"{path} must be a mapping"
        for key, value in doc.items():
            assert key in schema, f"{path}.{key} is not a v1beta4 field"
            check(value, schema[key], f"{path}.{key}")
    elif isinstance(schema, list):
        assert isinstance(doc, list), f"{path} must be a list"
        for i, item in enumerate(doc):
            check(item, schema[0], f"{path}[{i}]")
    else:
        assert isinstance(doc, schema), f"{path} must be {schema.__name__}"


def gpu_node(**extra: Any) -> m.Node:
    inventory = {"gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3"} for i in range(8)],
                 "cpu": {"arch": "x86_64"}}
    return m.Node(name="gpu-01", inventory=inventory, health="ok", maintenance=False, **extra)


def test_join_configuration_has_only_v1beta4_fields_and_what_kubeadm_needs() -> None:
    doc = join_configuration(gpu_node(), "k8s", "leaf-1", "10.0.0.10:6443",
                             ["sha256:" + "a" * 64])
    check(doc, V1BETA4)
    for path in REQUIRED:
        value: Any = doc
        for key in path:
            value = value[key]
        assert value, f"{'.'.join(path)} is required"
    assert doc["apiVersion"] == "kubeadm.k8s.io/v1beta4" and doc["kind"] == "JoinConfiguration"
    assert doc["discovery"]["bootstrapToken"]["token"] == TOKEN_PLACEHOLDER
    assert doc["discovery"]["bootstrapToken"]["unsafeSkipCAVerification"] is False
    args = {a["name"]: a["value"] for a in doc["nodeRegistration"]["kubeletExtraArgs"]}
    labels = dict(pair.split("=", 1) for pair in args["node-labels"].split(","))
    assert labels["metalfleet.io/cluster"] == "k8s" and labels["nvidia.com/gpu.count"] == "8"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in (
        doc["nodeRegistration"]["taints"])


def test_the_checker_catches_wrong_fields() -> None:
    # v1beta3 spellings: kubeletExtraArgs as a map, discovery.timeout.
    with pytest.raises(AssertionError, match="kubeletExtraArgs must be a list"):
        check({"nodeRegistration": {"kubeletExtraArgs": {"node-labels": "a=b"}}}, V1BETA4)
    with pytest.raises(AssertionError, match=r"discovery\.timeout is not a v1beta4 field"):
        check({"discovery": {"timeout": "5m"}}, V1BETA4)


def test_kubelet_may_not_set_restricted_labels_on_itself() -> None:
    labels = {"node-role.kubernetes.io/gpu": "", "topology.kubernetes.io/zone": "rack-1",
              "metalfleet.io/rack": "rack-1", "kubernetes.io/arch": "amd64",
              "example.k8s.io/x": "y"}
    assert kubelet_labels(labels) == {"kubernetes.io/arch": "amd64",
                                      "metalfleet.io/rack": "rack-1",
                                      "topology.kubernetes.io/zone": "rack-1"}
