"""Slurm's SuspendProgram / ResumeProgram: two small scripts that call ``metalfleet slurm
suspend|resume`` with the host list Slurm passes, a token read from a file at run time (the
token is never written into the scripts or the database)."""

from __future__ import annotations

import shlex

SUSPEND = "metalfleet-suspend"
RESUME = "metalfleet-resume"


def wrapper(action: str, cluster: str, api_url: str, token_file: str,
            command: list[str]) -> str:
    q = shlex.quote
    what = "off" if action == "suspend" else "on"
    return "\n".join([
        "#!/bin/sh",
        f"# Slurm {'SuspendProgram' if action == 'suspend' else 'ResumeProgram'} for cluster "
        f"{cluster}, rendered by metalfleet:",
        f"# powers the nodes in host list $1 {what} through their BMC.",
        "set -eu",
        f"METALFLEET_TOKEN=\"$(cat {q(token_file)})\"",
        f"METALFLEET_URL={q(api_url)}",
        "export METALFLEET_TOKEN METALFLEET_URL",
        f"exec {' '.join(q(part) for part in command)} slurm {action} --cluster {q(cluster)} "
        "\"$1\"",
    ]) + "\n"
