"""From the database to Slurm's view: nodes from their inventory, switches from the model."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.scheduling.allocation import cluster_nodes, leaf_switches
from metalfleet.scheduling.slurm.config import Partition, SlurmNode, SlurmSite, SlurmSwitch


def slurm_node(node: m.Node) -> SlurmNode:
    """CPUs, memory and GPUs from the agent's inventory; the node class fills what is missing."""
    inventory: dict[str, Any] = node.inventory or {}
    cpu = inventory.get("cpu") or {}
    klass = node.node_class
    sockets = int(cpu.get("sockets") or (klass.cpu_sockets if klass else 1) or 1)
    cores = int(cpu.get("cores") or (klass.cpu_cores if klass else 0) or sockets)
    threads = int(cpu.get("threads") or cores)
    memory = (inventory.get("memory") or {}).get("total_mib")
    if not memory:
        memory = (klass.memory_gib * 1024 if klass else 0) or 1
    gpus = inventory.get("gpus")
    if gpus is None:
        indices = tuple(range(klass.gpu_count if klass else 0))
    else:
        indices = tuple(sorted(int(g.get("index", i)) for i, g in enumerate(gpus)))
    features = []
    if klass is not None:
        features.append(klass.name)
    if node.rack is not None:
        features.append(node.rack.name)
    return SlurmNode(
        name=node.name,
        sockets=sockets,
        cores_per_socket=max(1, cores // sockets),
        threads_per_core=max(1, threads // cores) if cores else 1,
        real_memory_mib=int(memory),
        gpus=len(indices),
        gpu_indices=indices,
        nvml=inventory.get("gpu_driver") is not None,
        features=tuple(features),
    )


def switches_for(session: Session, nodes: list[m.Node], cluster: str) -> list[SlurmSwitch]:
    """Leaves with their nodes, each leaf under the first spine it links to; one root above
    several tops (Slurm needs one switch that reaches every node)."""
    ids = [node.id for node in nodes]
    leaf_of = leaf_switches(session, select(m.Node.id).where(m.Node.id.in_(ids)))
    by_leaf: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        if node.id in leaf_of:
            by_leaf[leaf_of[node.id]].append(node.name)
    leaves = sorted(by_leaf)
    parent: dict[str, str] = {}
    if leaves:
        leaf_ids = select(m.Switch.id).where(m.Switch.name.in_(leaves))
        links = session.scalars(select(m.SwitchLink).where(or_(
            m.SwitchLink.switch_id.in_(leaf_ids), m.SwitchLink.peer_switch_id.in_(leaf_ids))))
        for link in sorted(links, key=lambda lk: (lk.switch.name, lk.peer_switch.name)):
            for low, high in ((link.switch, link.peer_switch), (link.peer_switch, link.switch)):
                if low.name in by_leaf and high.role == "spine" and low.name not in parent:
                    parent[low.name] = high.name
    switches = [SlurmSwitch(name, nodes=tuple(sorted(by_leaf[name]))) for name in leaves]
    children: dict[str, list[str]] = defaultdict(list)
    for leaf, spine in parent.items():
        children[spine].append(leaf)
    switches += [SlurmSwitch(spine, switches=tuple(sorted(kids)))
                 for spine, kids in sorted(children.items())]
    tops = [leaf for leaf in leaves if leaf not in parent] + sorted(children)
    unplaced = sorted(node.name for node in nodes if node.id not in leaf_of)
    if unplaced:
        switches.append(SlurmSwitch(f"{cluster}-unswitched", nodes=tuple(unplaced)))
        tops.append(f"{cluster}-unswitched")
    if len(tops) > 1:
        switches.append(SlurmSwitch(f"{cluster}-root", switches=tuple(tops)))
    return switches


def cluster_view(
    session: Session, cluster: m.Cluster, site: SlurmSite
) -> tuple[list[SlurmNode], list[Partition], list[SlurmSwitch]]:
    nodes = sorted(cluster_nodes(cluster), key=lambda n: n.name)
    slurm_nodes = [slurm_node(node) for node in nodes]
    accounts = (cluster.tenant.name,) if site.tenant_accounts and cluster.tenant else ()
    partitions = [Partition(cluster.name, tuple(n.name for n in nodes), default=True,
                            allow_accounts=accounts)]
    return slurm_nodes, partitions, switches_for(session, nodes, cluster.name)
