"""kubeadm JoinConfiguration (v1beta4) per node: the node's name, labels and taints from the
inventory, the control plane endpoint and CA hashes from the cluster's settings.

The bootstrap token is a secret metalfleet does not keep: the files carry ``${KUBEADM_TOKEN}``
for ``envsubst`` on the node (``envsubst < join.yaml > /tmp/join.yaml; kubeadm join --config
/tmp/join.yaml``).
"""

from __future__ import annotations

from typing import Any

from metalfleet.db import models as m
from metalfleet.scheduling.kubernetes.labels import node_labels, node_taints

API_VERSION = "kubeadm.k8s.io/v1beta4"
TOKEN_PLACEHOLDER = "${KUBEADM_TOKEN}"
CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
# kubelet may set only these labels of the kubernetes.io / k8s.io namespaces on itself.
KUBELET_ALLOWED = {"kubernetes.io/arch", "kubernetes.io/os", "kubernetes.io/hostname",
                   "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
                   "node.kubernetes.io/instance-type"}


def kubelet_labels(labels: dict[str, str]) -> dict[str, str]:
    def allowed(key: str) -> bool:
        domain = key.split("/", 1)[0] if "/" in key else ""
        restricted = domain.endswith(("kubernetes.io", "k8s.io"))
        return not restricted or key in KUBELET_ALLOWED

    return {k: v for k, v in sorted(labels.items()) if allowed(k)}


def join_configuration(node: m.Node, cluster: str, leaf: str | None, endpoint: str,
                       ca_cert_hashes: list[str]) -> dict[str, Any]:
    labels = kubelet_labels(node_labels(node, cluster, leaf))
    return {
        "apiVersion": API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {
            "apiServerEndpoint": endpoint,
            "token": TOKEN_PLACEHOLDER,
            "caCertHashes": list(ca_cert_hashes),
            "unsafeSkipCAVerification": not ca_cert_hashes,
        }},
        "nodeRegistration": {
            "name": node.name,
            "criSocket": CRI_SOCKET,
            "taints": node_taints(node),
            "kubeletExtraArgs": [
                {"name": "node-labels", "value": ",".join(f"{k}={v}" for k, v in labels.items())},
            ],
        },
    }


def join_configurations(cluster: m.Cluster, endpoint: str,
                        ca_cert_hashes: list[str]) -> dict[str, dict[str, Any]]:
    """file name -> JoinConfiguration, one per member."""
    return {f"kubeadm-join-{mb.node_name}.yaml":
            join_configuration(mb.node, cluster.name, mb.leaf, endpoint, ca_cert_hashes)
            for mb in sorted(cluster.members, key=lambda mb: mb.node_name)}
