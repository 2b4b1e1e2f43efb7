"""Kubernetes manifests for a cluster: its Node labels/taints, the NVIDIA device plugin and
Node Feature Discovery. Plain dicts, dumped as multi-document YAML."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.scheduling.kubernetes import kubeadm, metallb
from metalfleet.scheduling.kubernetes.labels import PREFIX, node_labels, node_taints

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.15.0"
NFD_IMAGE = "registry.k8s.io/nfd/node-feature-discovery:v0.16.0"
NFD_NAMESPACE = "node-feature-discovery"


def node_manifests(cluster: m.Cluster) -> list[dict[str, Any]]:
    docs = []
    for member in cluster.members:
        node = member.node
        docs.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name,
                         "labels": node_labels(node, cluster.name, member.leaf)},
            "spec": {"taints": node_taints(node)},
        })
    return docs


def _in_cluster(cluster: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": f"{PREFIX}/cluster", "operator": "In", "values": [cluster]}, *extra]}]}}}


def device_plugin(cluster: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
    return [{
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system",
                     "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "affinity": _in_cluster(cluster, {"key": "nvidia.com/gpu.present",
                                                      "operator": "In", "values": ["true"]}),
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "nvidia-device-plugin",
                        "image": DEVICE_PLUGIN_IMAGE,
                        "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "device-plugin",
                                          "mountPath": "/var/lib/kubelet/device-plugins"}],
                    }],
                    "volumes": [{"name": "device-plugin",
                                 "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                },
            },
        },
    }]


def node_feature_discovery(cluster: str) -> list[dict[str, Any]]:
    ns = NFD_NAMESPACE
    master = {"app.kubernetes.io/name": "nfd-master"}
    worker = {"app.kubernetes.io/name": "nfd-worker"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "nfd-master", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "nfd-master"},
         "rules": [
             {"apiGroups": [""], "resources": ["nodes", "nodes/status"],
              "verbs": ["get", "list", "watch", "patch", "update"]},
             {"apiGroups": ["nfd.k8s-sigs.io"], "resources": ["nodefeatures",
                                                             "nodefeaturerules"],
              "verbs": ["get", "list", "watch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "nfd-master"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "nfd-master"},
         "subjects": [{"kind": "ServiceAccount", "name": "nfd-master", "namespace": ns}]},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "nfd-master", "namespace": ns, "labels": master},
         "spec": {"replicas": 1, "selector": {"matchLabels": master},
                  "template": {"metadata": {"labels": master}, "spec": {
                      "serviceAccountName": "nfd-master",
                      "containers": [{"name": "nfd-master", "image": NFD_IMAGE,
                                      "command": ["nfd-master"]}]}}}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "nfd-worker", "namespace": ns, "labels": worker},
         "spec": {"selector": {"matchLabels": worker},
                  "template": {"metadata": {"labels": worker}, "spec": {
                      "affinity": _in_cluster(cluster),
                      "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                      "containers": [{
                          "name": "nfd-worker", "image": NFD_IMAGE, "command": ["nfd-worker"],
                          "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {
                              "fieldPath": "spec.nodeName"}}}],
                          "volumeMounts": [
                              {"name": "host-sys", "mountPath": "/host-sys", "readOnly": True},
                              {"name": "host-boot", "mountPath": "/host-boot",
                               "readOnly": True}]}],
                      "volumes": [{"name": "host-sys", "hostPath": {"path": "/sys"}},
                                  {"name": "host-boot", "hostPath": {"path": "/boot"}}]}}}},
    ]


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def cluster_manifests(session: Session, cluster: m.Cluster) -> dict[str, list[dict[str, Any]]]:
    files = {"nodes.yaml": node_manifests(cluster)}
    if any((mb.node.inventory or {}).get("gpus") for mb in cluster.members):
        files["nvidia-device-plugin.yaml"] = device_plugin(cluster.name)
    files["node-feature-discovery.yaml"] = node_feature_discovery(cluster.name)
    pool = metallb.manifests(session, cluster)
    if pool:
        files["metallb.yaml"] = pool
    settings = (cluster.scheduler_config or {}).get("kubernetes") or {}
    if settings.get("api_server_endpoint"):
        joins = kubeadm.join_configurations(cluster, settings["api_server_endpoint"],
                                            settings.get("ca_cert_hashes") or [])
        files.update({name: [doc] for name, doc in joins.items()})
    return files
