"""Slurm's power-saving backend: suspend powers a cluster's nodes off through their BMC,
resume powers them on. The request only sets each node's target power state; a conductor
carries it out, and callers wait on ``power_state`` (``metalfleet slurm resume`` does)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.inventory import events, nodes
from metalfleet.scheduling import schemas as cs
from metalfleet.scheduling.hostlist import compress, expand

TARGET = {"suspend": "off", "resume": "on"}


def request(session: Session, cluster: m.Cluster, body: cs.PowerIn, *,
            actor: str) -> cs.PowerOut:
    names = expand(body.nodes)
    members = {member.node_name for member in cluster.members}
    strangers = [name for name in names if name not in members]
    if strangers:
        raise ValidationError(
            f"{compress(strangers)} not in cluster {cluster.name!r}, whose nodes are "
            f"{compress(members) or 'none'}; pass only the cluster's nodes", field="nodes")
    target = TARGET[body.action]
    out = []
    for name in names:
        node = nodes.request_power(session, name, target, actor=actor)
        events.record(session, node=node, kind="scheduler", actor=actor,
                      message=f"{body.action} by {cluster.scheduler} power saving "
                      f"(cluster {cluster.name}): power {target}",
                      data={"cluster": cluster.name, "action": body.action})
        out.append(cs.PowerNodeOut(name=name, power_state=node.power_state,
                                   target_power_state=node.target_power_state))
    return cs.PowerOut(action=body.action, nodes=out)
