"""Per-tenant accounts and QoS for Slurm's accounting database, as ``sacctmgr`` commands.

QoS are not slurm.conf settings: they live in slurmdbd. metalfleet writes the commands into
``sacctmgr.sh`` next to slurm.conf (push writes it; run it once on a host with slurmdbd). It is
idempotent: ``add`` fails harmlessly on what exists, ``modify`` then sets every limit.
"""

from __future__ import annotations

import shlex

from metalfleet.scheduling.slurm.config import Qos


def _set(qos: Qos) -> list[str]:
    values = [f"Priority={qos.priority}"]
    for key, value in (("GrpTRES", qos.grp_tres), ("MaxTRESPerUser", qos.max_tres_per_user)):
        # A TRES limit is cleared per TRES (cpu=-1), so an unset one is left as it is.
        if value is not None:
            values.append(f"{key}={value}")
    for key, limit in (("MaxWall", qos.max_wall), ("MaxJobsPerUser", qos.max_jobs_per_user)):
        # -1 clears a limit that was set before and is gone from the configuration now.
        values.append(f"{key}={limit if limit is not None else -1}")
    return values


def sacctmgr_script(cluster_name: str, account: str, qos: Qos) -> str:
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        f"# Slurm accounting for cluster {cluster_name}, rendered by metalfleet: the tenant's",
        "# account and QoS. Idempotent; run where sacctmgr reaches slurmdbd.",
        "set -u",
        f"sacctmgr -i add cluster {q(cluster_name)} >/dev/null 2>&1 || true",
        f"sacctmgr -i add account {q(account)} Cluster={q(cluster_name)} "
        f"Description={q('metalfleet tenant ' + account)} >/dev/null 2>&1 || true",
        f"sacctmgr -i add qos {q(qos.name)} >/dev/null 2>&1 || true",
        f"sacctmgr -i modify qos where name={q(qos.name)} set {' '.join(_set(qos))}",
        f"sacctmgr -i modify account where name={q(account)} cluster={q(cluster_name)} "
        f"set QOS={q(qos.name)} DefaultQOS={q(qos.name)}",
    ]
    return "\n".join(lines) + "\n"
