"""Push a cluster's scheduler files where its scheduler reads them, and make it reload.

Slurm: the files go into the directory of the configured slurm.conf (written atomically, only
when they change), then ``scontrol reconfigure`` through the configured prefix. Slurm 22.05
cannot add or remove nodes on reconfigure (slurmctld exits: "MaxNodeCount has changed ...
must be restarted"), so when the node list changes the files are written and the result says
a restart is required instead of stopping the controller.

Kubernetes: ``kubectl apply -f`` of each manifest through the configured kubectl.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.scheduling import hooks, render
from metalfleet.scheduling import schemas as cs
from metalfleet.scheduling.slurm import files as slurm_files

_NODE_LINE = re.compile(r"^\s*NodeName=(\S+)", re.MULTILINE)


def conf_nodes(text: str) -> set[str]:
    return {name for name in _NODE_LINE.findall(text) if name.upper() != "DEFAULT"}


def _write(path: Path, text: str, executable: bool) -> str:
    """Write ``text`` to ``path`` atomically; 'added', 'changed' or 'unchanged'."""
    old = path.read_text() if path.exists() else None
    if old == text:
        return "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o755 if executable else 0o644)
    os.replace(tmp, path)
    return "added" if old is None else "changed"


def push_slurm(session: Session, cluster: m.Cluster) -> cs.PushOut:
    settings = slurm_files.slurm_config(cluster)
    if settings is None:
        raise ValidationError(
            f"cluster {cluster.name!r} has no Slurm settings; set them first: metalfleet "
            f"cluster configure {cluster.name} --slurm-conf /etc/slurm/slurm.conf")
    conf = Path(settings.conf)
    rendered = slurm_files.slurm_files(session, cluster)
    rendered[conf.name] = rendered.pop("slurm.conf")
    before = conf_nodes(conf.read_text()) if conf.exists() else set()
    after = conf_nodes(rendered[conf.name])
    status = {name: _write(conf.parent / name, text, name in slurm_files.EXECUTABLE)
              for name, text in sorted(rendered.items())}
    added, removed = sorted(after - before), sorted(before - after)
    changed = any(s != "unchanged" for s in status.values())
    out, reconfigured, restart = "", False, False
    if before and (added or removed):
        restart = True
        out = ("the node list changed: restart slurmctld, then slurmd on every node "
               "(scontrol reconfigure cannot add or remove nodes in this Slurm)")
    elif before and changed:
        control = hooks.slurm_control(cluster)
        assert control is not None  # settings exist
        out = control.run("scontrol", "reconfigure").strip() or "scontrol reconfigure: ok"
        reconfigured = True
    elif not before:
        out = "first push: start slurmctld and slurmd with these files"
    return cs.PushOut(scheduler="slurm", directory=str(conf.parent), files=status,
                      nodes_added=added, nodes_removed=removed, reconfigured=reconfigured,
                      restart_required=restart, output=out)


def push_kubernetes(session: Session, cluster: m.Cluster) -> cs.PushOut:
    outputs: list[str] = []
    status: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in render.render_kubernetes(session, cluster, Path(tmp)):
            if path.name.startswith("kubeadm-join-"):
                continue  # for kubeadm on each node, not objects in the API
            outputs.append(hooks.kubectl(cluster, "apply", "-f", str(path)).strip())
            status[path.name] = "applied"
    return cs.PushOut(scheduler="kubernetes", directory=None, files=status, nodes_added=[],
                      nodes_removed=[], reconfigured=True, restart_required=False,
                      output="\n".join(o for o in outputs if o))


def push(session: Session, cluster: m.Cluster) -> cs.PushOut:
    if cluster.scheduler == "slurm":
        return push_slurm(session, cluster)
    if cluster.scheduler == "kubernetes":
        return push_kubernetes(session, cluster)
    raise ValidationError(f"cluster {cluster.name!r} has no scheduler (scheduler 'none'); "
                          "there is nothing to push")
