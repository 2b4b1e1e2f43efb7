"""Drain and resume nodes in Slurm with ``scontrol``, recording why in the fleet's events.

Slurm's client commands retry for minutes when slurmctld is down, so every call runs under
``timeout``. ``SlurmControl`` says how to reach the controller: the slurm.conf to use and a
command prefix (``nsenter --net=...`` for a controller inside a network namespace, ``ssh
host`` for a remote one).

ssh joins its arguments into one line that the remote shell parses again, so with a remote
prefix every argument metalfleet adds is quoted with ``shlex.quote`` (``remote_shell``: None
means "when the prefix's first word is ssh"). Node names are refused and reasons sanitized
(core/safe_text.py) before any command is built, whether or not the prefix quotes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from metalfleet.core import safe_text
from metalfleet.core.errors import MetalfleetError
from metalfleet.db import models as m
from metalfleet.inventory import events


class SlurmError(MetalfleetError):
    status = 502
    title = "Slurm refused"


@dataclass(frozen=True)
class SlurmControl:
    conf: Path | None = None
    prefix: tuple[str, ...] = ()
    timeout_s: float = 15.0
    env: dict[str, str] = field(default_factory=dict)
    # The prefix hands its arguments to a remote shell (ssh): None = when it starts with ssh.
    remote_shell: bool | None = None

    def run(self, *args: str) -> str:
        env = {**os.environ, **self.env}
        if self.conf is not None:
            env["SLURM_CONF"] = str(self.conf)
        command = [*self.prefix, *shell_args(self.prefix, self.remote_shell,
                                             ("timeout", f"{self.timeout_s:g}", *args))]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=self.timeout_s + 5, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"{' '.join(args)} failed: {exc}") from exc
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            if done.returncode == 124:
                why = f"no answer within {self.timeout_s:g} s (is slurmctld running?)"
            raise SlurmError(f"{' '.join(args)} failed: {why}")
        return done.stdout


def is_remote_shell(prefix: tuple[str, ...] | list[str], remote_shell: bool | None) -> bool:
    """Whether ``prefix`` joins what follows into one shell line (explicit, or ssh)."""
    if remote_shell is not None:
        return remote_shell
    return bool(prefix) and os.path.basename(prefix[0]) == "ssh"


def shell_args(prefix: tuple[str, ...] | list[str], remote_shell: bool | None,
               args: tuple[str, ...]) -> list[str]:
    """``args`` as they must follow ``prefix``: each one shell-quoted for a remote shell."""
    if is_remote_shell(prefix, remote_shell):
        return [shlex.quote(arg) for arg in args]
    return list(args)


def _name(node: m.Node | str) -> str:
    name = node if isinstance(node, str) else node.name
    if not safe_text.is_name(name):
        raise SlurmError(f"refusing to pass node name {name[:80]!r} to Slurm: "
                         f"{safe_text.NAME_CHARS}")
    return name


def drain(
    node: m.Node | str, reason: str, control: SlurmControl | None = None, *,
    session: Session | None = None, actor: str = "metalfleet",
) -> None:
    """Stop Slurm from starting jobs on the node (running ones finish), with the reason."""
    if not reason.strip():
        raise ValueError("Slurm needs a reason to drain a node")
    reason = safe_text.sanitize_reason(reason)  # maintenance reasons, errors: not trusted
    control = control or SlurmControl()
    control.run("scontrol", "update", f"NodeName={_name(node)}", "State=DRAIN",
                f"Reason={reason}")
    if session is not None and isinstance(node, m.Node):
        events.record(session, node=node, kind="scheduler", actor=actor,
                      message=f"drained in Slurm: {reason}", data={"slurm": "drain"})


def resume(
    node: m.Node | str, control: SlurmControl | None = None, *,
    session: Session | None = None, actor: str = "metalfleet",
) -> None:
    """Let Slurm schedule on the node again."""
    control = control or SlurmControl()
    control.run("scontrol", "update", f"NodeName={_name(node)}", "State=RESUME")
    if session is not None and isinstance(node, m.Node):
        events.record(session, node=node, kind="scheduler", actor=actor,
                      message="resumed in Slurm", data={"slurm": "resume"})


def node_states(control: SlurmControl | None = None) -> dict[str, tuple[str, str]]:
    """node -> (state, reason) as ``sinfo`` reports them."""
    control = control or SlurmControl()
    out = control.run("sinfo", "-N", "-h", "-o", "%N|%T|%E")
    states: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        name, _, rest = line.partition("|")
        state, _, reason = rest.partition("|")
        if name:
            states[name.strip()] = (state.strip(), reason.strip())
    return states
