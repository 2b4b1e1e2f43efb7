"""Prometheus HTTP service discovery: the exporters of every deployed (active) node.

Format: https://prometheus.io/docs/prometheus/latest/http_sd/ -- a JSON list of target groups
``{"targets": ["host:port"], "labels": {...}}``. Each node gives one group per exporter so the
``role`` label tells node-exporter (9100) and the agent/DCGM GPU exporter (9400) apart. A node
whose ``driver_info.exporter`` names one exporter (the lab's nodes) gets that one target, with
``__metrics_path__``, role ``agent-exporter``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.states import NodeState
from metalfleet.db import models as m

ADDRESS_LABEL = "metalfleet.io/address"
NODE_EXPORTER_PORT = 9100
GPU_EXPORTER_PORT = 9400
# driver_info key naming a node's one agent exporter: {"address": "host:port",
# "metrics_path": "/..."} (lab/exporters.py sets it for lab nodes)
EXPORTER_KEY = "exporter"
AGENT_ROLE = "agent-exporter"
EXPORTERS: tuple[tuple[str, int], ...] = (
    ("node-exporter", NODE_EXPORTER_PORT),
    ("gpu-exporter", GPU_EXPORTER_PORT),
)


def _host(node: m.Node) -> str:
    address = str((node.labels or {}).get(ADDRESS_LABEL) or node.name)
    return f"[{address}]" if ":" in address else address  # IPv6 literal


def targets(session: Session) -> list[dict[str, Any]]:
    clusters: dict[str, str] = {
        node_id: name for node_id, name in session.execute(
            select(m.ClusterNode.node_id, m.Cluster.name)
            .join(m.Cluster, m.ClusterNode.cluster_id == m.Cluster.id))
    }
    nodes = session.scalars(
        select(m.Node).where(m.Node.state == NodeState.ACTIVE.value).order_by(m.Node.name))
    groups: list[dict[str, Any]] = []
    for node in nodes:
        labels = {
            "node": node.name,
            "rack": node.rack.name if node.rack else "",
            "class": node.node_class.name if node.node_class else "",
            "tenant": node.tenant.name if node.tenant else "",
            "cluster": clusters.get(node.id, ""),
        }
        exporter = (node.driver_info or {}).get(EXPORTER_KEY)
        if isinstance(exporter, dict) and exporter.get("address"):
            # one exporter at a named address/path (the lab's shared server; an agent on
            # another port): only that target
            groups.append({"targets": [str(exporter["address"])], "labels": {
                **labels, "role": AGENT_ROLE,
                "__metrics_path__": str(exporter.get("metrics_path") or "/metrics")}})
            continue
        host = _host(node)
        for role, port in EXPORTERS:
            groups.append({"targets": [f"{host}:{port}"], "labels": {**labels, "role": role}})
    return groups
