"""Write what a cluster's scheduler needs into a directory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.scheduling.kubernetes import manifests
from metalfleet.scheduling.slurm import config, files


def render_slurm(
    session: Session, cluster: m.Cluster, directory: Path, site: config.SlurmSite | None = None
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.slurm_files(session, cluster, site).items():
        path = directory / name
        path.write_text(text)
        if name in files.EXECUTABLE:
            path.chmod(0o755)
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
