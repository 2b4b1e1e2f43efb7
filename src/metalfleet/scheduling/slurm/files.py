"""Every file a Slurm cluster needs, from the cluster and its ``scheduler_config.slurm``:
slurm.conf, gres.conf, topology.conf, and when asked for sacctmgr.sh (tenant QoS) and the
power-saving wrappers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.scheduling import schemas as cs
from metalfleet.scheduling.hostlist import expand
from metalfleet.scheduling.slurm import accounting, config, gather, power

EXECUTABLE = frozenset({"sacctmgr.sh", power.SUSPEND, power.RESUME})


def slurm_config(cluster: m.Cluster) -> cs.SlurmConfig | None:
    raw = (cluster.scheduler_config or {}).get("slurm")
    return cs.SlurmConfig.model_validate(raw) if raw else None


def default_site(cluster: m.Cluster) -> config.SlurmSite:
    return config.SlurmSite(cluster_name=cluster.name.replace(".", "-"))


def qos_for(cluster: m.Cluster, wanted: cs.SlurmQosIn) -> config.Qos:
    name = wanted.name or (cluster.tenant.name if cluster.tenant else cluster.name)
    return config.Qos(name=name, priority=wanted.priority, grp_tres=wanted.grp_tres,
                      max_tres_per_user=wanted.max_tres_per_user, max_wall=wanted.max_wall,
                      max_jobs_per_user=wanted.max_jobs_per_user)


def slurm_files(
    session: Session, cluster: m.Cluster, site: config.SlurmSite | None = None
) -> dict[str, str]:
    """file name -> content. ``site`` overrides the cluster's configured one."""
    settings = slurm_config(cluster)
    if site is None:
        site = (settings.site if settings and settings.site else default_site(cluster))
    nodes, partitions, switches = gather.cluster_view(session, cluster, site)
    files: dict[str, str] = {}
    if settings is not None:
        partitions = [dataclasses.replace(p, max_time=settings.max_time) for p in partitions]
    qos = qos_for(cluster, settings.qos) if settings and settings.qos else None
    if qos is not None:
        account = cluster.tenant.name if cluster.tenant else cluster.name
        if site.accounting_host:
            # Without slurmdbd, AllowAccounts/AllowQos make slurmctld refuse every job
            # ("Job's account not known"): only restrict the partition with accounting on.
            partitions = [dataclasses.replace(p, allow_qos=(qos.name,),
                                              allow_accounts=p.allow_accounts or (account,))
                          for p in partitions]
        files["sacctmgr.sh"] = accounting.sacctmgr_script(site.cluster_name, account, qos)
    saving = None
    if settings and settings.power_saving:
        wanted = settings.power_saving
        directory = Path(settings.conf).parent
        saving = config.PowerSaving(
            suspend_program=str(directory / power.SUSPEND),
            resume_program=str(directory / power.RESUME),
            suspend_time_s=wanted.suspend_time_s, suspend_timeout_s=wanted.suspend_timeout_s,
            resume_timeout_s=wanted.resume_timeout_s,
            exclude=tuple(expand(wanted.exclude)) if wanted.exclude else ())
        for action, name in (("suspend", power.SUSPEND), ("resume", power.RESUME)):
            files[name] = power.wrapper(action, cluster.name, wanted.api_url,
                                        wanted.token_file, wanted.command)
    files["slurm.conf"] = config.slurm_conf(site, nodes, partitions, saving)
    files["gres.conf"] = config.gres_conf(site, nodes)
    files["topology.conf"] = config.topology_conf(switches)
    return files
