"""Kubernetes node labels and taints from the fleet's inventory.

Labels follow the names NVIDIA's GPU feature discovery uses where one exists
(``nvidia.com/gpu.count``, ``nvidia.com/gpu.product``, ``nvidia.com/gpu.memory``), so
workloads written for GFD select metalfleet nodes unchanged; the rest are ``metalfleet.io/``.
"""

from __future__ import annotations

import re
from typing import Any

from metalfleet.db import models as m

PREFIX = "metalfleet.io"
_INVALID = re.compile(r"[^A-Za-z0-9._-]+")


def label_value(text: object) -> str:
    """A valid label value: letters, digits, '-', '_', '.', at most 63, alphanumeric ends."""
    value = _INVALID.sub("-", str(text))[:63]
    return value.strip("-_.")


def node_labels(
    node: m.Node, cluster: str | None = None, leaf: str | None = None
) -> dict[str, str]:
    inventory: dict[str, Any] = node.inventory or {}
    labels: dict[str, str] = {}
    if node.node_class is not None:
        labels[f"{PREFIX}/class"] = node.node_class.name
    if node.rack is not None:
        labels[f"{PREFIX}/rack"] = node.rack.name
        labels["topology.kubernetes.io/zone"] = node.rack.name
    if node.tenant is not None:
        labels[f"{PREFIX}/tenant"] = node.tenant.name
    if cluster:
        labels[f"{PREFIX}/cluster"] = cluster
    if leaf:
        labels[f"{PREFIX}/leaf-switch"] = leaf
    gpus = inventory.get("gpus") or []
    if gpus:
        labels["nvidia.com/gpu.present"] = "true"
        labels["nvidia.com/gpu.count"] = str(len(gpus))
        if gpus[0].get("name"):
            labels["nvidia.com/gpu.product"] = label_value(gpus[0]["name"].replace(" ", "-"))
        if gpus[0].get("memory_mib"):
            labels["nvidia.com/gpu.memory"] = str(gpus[0]["memory_mib"])
        if any(g.get("nvlink") for g in gpus):
            labels[f"{PREFIX}/nvlink"] = "true"
    ib = [p for p in inventory.get("infiniband") or [] if p.get("link_layer") == "InfiniBand"]
    if ib:
        labels[f"{PREFIX}/infiniband"] = "true"
        labels[f"{PREFIX}/ib-ports"] = str(len(ib))
        rates = [p["rate_gbps"] for p in ib if p.get("rate_gbps")]
        if rates:
            labels[f"{PREFIX}/ib-rate-gbps"] = str(int(max(rates)))
    cpu = inventory.get("cpu") or {}
    if cpu.get("arch"):
        labels["kubernetes.io/arch"] = {"x86_64": "amd64", "aarch64": "arm64"}.get(
            cpu["arch"], label_value(cpu["arch"]))
    return {key: label_value(value) for key, value in labels.items()}


def node_taints(node: m.Node) -> list[dict[str, str]]:
    """GPU nodes take only pods that tolerate GPUs; unhealthy or maintenance nodes none."""
    taints = []
    if (node.inventory or {}).get("gpus"):
        taints.append({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
    if node.maintenance:
        taints.append({"key": f"{PREFIX}/maintenance", "value": "true",
                       "effect": "NoSchedule"})
    if node.health == "failed":
        taints.append({"key": f"{PREFIX}/unhealthy", "value": "failed", "effect": "NoExecute"})
    elif node.health == "degraded":
        taints.append({"key": f"{PREFIX}/unhealthy", "value": "degraded",
                       "effect": "NoSchedule"})
    return taints
