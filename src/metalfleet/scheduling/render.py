"""Write what a cluster's scheduler needs into a directory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.scheduling.kubernetes import manifests
from metalfleet.scheduling.slurm import config, gather


def render_slurm(
    session: Session, cluster: m.Cluster, directory: Path, site: config.SlurmSite | None = None
) -> list[Path]:
    site = site or config.SlurmSite(cluster_name=cluster.name.replace(".", "-"))
    nodes, partitions, switches = gather.cluster_view(session, cluster, site)
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "slurm.conf": config.slurm_conf(site, nodes, partitions),
        "gres.conf": config.gres_conf(site, nodes),
        "topology.conf": config.topology_conf(switches),
    }
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def render_kubernetes(session: Session, cluster: m.Cluster, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, docs in manifests.cluster_manifests(session, cluster).items():
        path = directory / name
        path.write_text(manifests.dump(docs))
        written.append(path)
    return written


def render_cluster(session: Session, cluster: m.Cluster, directory: Path) -> list[Path]:
    if cluster.scheduler == "slurm":
        return render_slurm(session, cluster, directory)
    if cluster.scheduler == "kubernetes":
        return render_kubernetes(session, cluster, directory)
    raise ValidationError(
        f"cluster {cluster.name!r} has no scheduler (scheduler 'none'); there is nothing to "
        "render"
    )
