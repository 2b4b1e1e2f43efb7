"""One interface to take a node out of its scheduler and give it back: drain and resume.

The health engine, the API and the CLI call :func:`drain` and :func:`resume`; which scheduler
the node is in follows from its cluster (``clusters.scheduler``), and how to reach it from the
cluster's ``scheduler_config``:

- ``{"slurm": {"conf": "/etc/slurm/slurm.conf", "prefix": ["ssh", "head"], "timeout_s": 15}}``
  drains with ``scontrol update State=DRAIN Reason=...`` and resumes with ``State=RESUME``;
- ``{"kubernetes": {"kubectl": ["kubectl", "--kubeconfig", "/etc/mf/admin.conf"]}}`` cordons and
  drains with ``kubectl cordon`` / ``kubectl drain --ignore-daemonsets``, resumes with
  ``kubectl uncordon``.

Admins set ``scheduler_config`` with ``PATCH /v1/clusters/{name}`` (``metalfleet cluster
configure``), validated by ``schemas.SchedulerConfig``; the API's drain/resume routes and the
health engine both come through here.

A scheduler that cannot be reached never blocks the caller: the outcome says so, an event
records it, and the health engine goes on (the node is in maintenance either way).

Nothing here trusts its strings (issue 11): a node or cluster name that is not a valid name
is refused before a command is built, a reason is reduced to core/safe_text's character set
(it may be made from an agent's component or read back from the database), and with a remote
prefix (``remote_shell``, default: the prefix or kubectl argv starts with ssh) every argument
metalfleet adds is ``shlex``-quoted, because ssh joins its arguments into one shell line.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core import safe_text
from metalfleet.core.errors import MetalfleetError
from metalfleet.db import models as m
from metalfleet.inventory import events
from metalfleet.scheduling.slurm import control as slurm


@dataclass(frozen=True)
class HookOutcome:
    """What a drain or resume did: which scheduler, whether it worked, and the detail."""

    scheduler: str
    action: str  # drain | resume
    ok: bool
    detail: str


def node_cluster(session: Session, node: m.Node) -> m.Cluster | None:
    return session.scalar(
        select(m.Cluster).join(m.ClusterNode, m.ClusterNode.cluster_id == m.Cluster.id)
        .where(m.ClusterNode.node_id == node.id)
    )


def slurm_control(cluster: m.Cluster) -> slurm.SlurmControl | None:
    conf: dict[str, Any] = (cluster.scheduler_config or {}).get("slurm") or {}
    if not conf:
        return None
    return slurm.SlurmControl(
        conf=Path(conf["conf"]) if conf.get("conf") else None,
        prefix=tuple(conf.get("prefix") or ()),
        timeout_s=float(conf.get("timeout_s", 15.0)),
        remote_shell=_remote_shell(conf),
    )


def _remote_shell(conf: dict[str, Any]) -> bool | None:
    value = conf.get("remote_shell")
    return value if isinstance(value, bool) else None


class KubectlError(MetalfleetError):
    status = 502
    title = "kubectl failed"


def kubectl(cluster: m.Cluster, *args: str) -> str:
    """Run the cluster's kubectl with ``args``; its stdout, or KubectlError saying why not.

    Errors name the subcommand only: the configured argv may carry a kubeconfig or token."""
    conf: dict[str, Any] = (cluster.scheduler_config or {}).get("kubernetes") or {}
    base = [str(part) for part in conf.get("kubectl") or ["kubectl"]]
    command = [*base, *slurm.shell_args(base, _remote_shell(conf), args)]
    timeout = float(conf.get("timeout_s", 60.0))
    what = f"kubectl {' '.join(args)}"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KubectlError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise KubectlError(f"{what} failed: {why}")
    return done.stdout


def _outcome(session: Session, node: m.Node, cluster: m.Cluster, action: str,
             error: str | None, detail: str, actor: str) -> HookOutcome:
    ok = error is None
    message = (f"{action} in {cluster.scheduler} ({cluster.name}): {detail}" if ok
               else f"{action} in {cluster.scheduler} ({cluster.name}) failed: {error}")
    events.record(session, node=node, kind="scheduler", actor=actor, message=message,
                  data={"scheduler": cluster.scheduler, "cluster": cluster.name,
                        "action": action, "ok": ok})
    return HookOutcome(cluster.scheduler, action, ok, detail if ok else str(error))


def _configured_slurm(cluster: m.Cluster) -> slurm.SlurmControl:
    control = slurm_control(cluster)
    if control is None:
        raise MetalfleetError(
            f"cluster {cluster.name} has no Slurm controller configured; set "
            "scheduler_config.slurm (conf, prefix) on the cluster")
    return control


def _act(session: Session, node: m.Node, action: str, detail: str, actor: str,
         slurm_args: tuple[str, ...], kubectl_calls: tuple[tuple[str, ...], ...]
         ) -> HookOutcome | None:
    cluster = node_cluster(session, node)
    if cluster is None or cluster.scheduler == "none":
        return None
    error: str | None = None
    try:
        for what, name in (("node", node.name), ("cluster", cluster.name)):
            if not safe_text.is_name(name):  # from the database: not trusted either
                raise MetalfleetError(f"refusing to pass {what} name {name[:80]!r} to the "
                                      f"scheduler: {safe_text.NAME_CHARS}")
        if cluster.scheduler == "slurm":
            _configured_slurm(cluster).run("scontrol", "update", f"NodeName={node.name}",
                                           *slurm_args)
        elif cluster.scheduler == "kubernetes":
            for args in kubectl_calls:
                kubectl(cluster, *args)
    except MetalfleetError as exc:
        error = exc.detail
    return _outcome(session, node, cluster, action, error, detail, actor)


def drain(session: Session, node: m.Node, reason: str, *, actor: str) -> HookOutcome | None:
    """Stop new work on the node in its scheduler; None when it is in no scheduler's cluster."""
    # One line (Slurm wants it) of safe characters: reasons may be made from a component.
    reason = safe_text.sanitize_reason(reason)
    return _act(session, node, "drain", reason, actor, ("State=DRAIN", f"Reason={reason}"), (
        ("cordon", node.name),
        ("drain", node.name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s"),
    ))


def resume(session: Session, node: m.Node, *, actor: str) -> HookOutcome | None:
    """Let the scheduler use the node again; None when it is in no scheduler's cluster."""
    return _act(session, node, "resume", "back in service", actor, ("State=RESUME",),
                (("uncordon", node.name),))
