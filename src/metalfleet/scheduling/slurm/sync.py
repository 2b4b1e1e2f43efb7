"""Keep Slurm in step with the fleet: drain a cluster's unhealthy or maintenance nodes with the
reason, resume them when they are fine again (only drains metalfleet made itself)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.scheduling.allocation import cluster_nodes
from metalfleet.scheduling.slurm.control import SlurmControl, drain, node_states, resume

REASON_PREFIX = "metalfleet:"


def drain_reason(node: m.Node) -> str | None:
    """Why Slurm should not run jobs on the node, or None when it may."""
    if node.maintenance:
        return f"{REASON_PREFIX} maintenance: {node.maintenance_reason or 'no reason given'}"
    if node.health in ("degraded", "failed"):
        detail = f": {node.last_error}" if node.last_error else ""
        return f"{REASON_PREFIX} health {node.health}{detail}"
    return None


def sync_drains(
    session: Session, cluster: m.Cluster, control: SlurmControl, *, actor: str = "metalfleet"
) -> dict[str, str]:
    """Drain or resume each node of ``cluster`` as its health says; returns what it did."""
    states = node_states(control)
    done: dict[str, str] = {}
    for node in cluster_nodes(cluster):
        if node.name not in states:
            continue
        state, reason = states[node.name]
        drained = "drain" in state.lower()
        wanted = drain_reason(node)
        if wanted is not None and not drained:
            drain(node, wanted, control, session=session, actor=actor)
            done[node.name] = "drain"
        elif wanted is None and drained and reason.startswith(REASON_PREFIX):
            resume(node, control, session=session, actor=actor)
            done[node.name] = "resume"
    return done
