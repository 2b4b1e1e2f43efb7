"""`metalfleet cluster ...`: allocate nodes as a cluster for a scheduler, and render its files."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from metalfleet.cli.common import Output, api_errors, client, parse_sets
from metalfleet.cli.output import Format, console, render

app = typer.Typer(help="Clusters: nodes allocated to a tenant for Slurm, Kubernetes or none.",
                  no_args_is_help=True)

COLUMNS = ["name", "tenant", "scheduler", "node_class", "count", "state", "leaves", "racks"]


@app.command()
def create(
    name: str,
    node_class: Annotated[str, typer.Option("--class", help="node class to allocate")],
    count: Annotated[int, typer.Option(help="how many nodes")],
    scheduler: Annotated[str, typer.Option(help="slurm, kubernetes or none")] = "none",
    tenant: Annotated[str | None, typer.Option(help="the tenant (members: their own)")] = None,
    same_leaf: Annotated[bool, typer.Option("--same-leaf",
                                            help="all nodes on one leaf switch")] = False,
    spread_racks: Annotated[bool, typer.Option("--spread-racks",
                                               help="spread over as many racks")] = False,
    label: Annotated[list[str] | None, typer.Option(
        help="nodes must carry key=value, repeatable")] = None,
    output: Output = Format.TABLE,
) -> None:
    """Allocate COUNT available nodes of a class as a cluster (topology-aware)."""
    body: dict[str, Any] = {
        "name": name, "scheduler": scheduler, "node_class": node_class, "count": count,
        "constraints": {"same_leaf": same_leaf, "spread_racks": spread_racks,
                        "labels": {k: str(v) for k, v in parse_sets(label).items()}},
    }
    if tenant is not None:
        body["tenant"] = tenant
    with api_errors():
        render(_summary(client().post("/v1/clusters", body)), output)


def _summary(cluster: dict[str, Any]) -> dict[str, Any]:
    return {**cluster, "nodes": [n["name"] for n in cluster.get("nodes", [])]}


@app.command("list")
def list_clusters(output: Output = Format.TABLE) -> None:
    """List clusters (members see their tenant's)."""
    with api_errors():
        items = client().list_all("/v1/clusters", limit=500)
    render(items, output, COLUMNS)


@app.command()
def show(name: str, output: Output = Format.TABLE) -> None:
    """Show a cluster and its nodes."""
    with api_errors():
        cluster = client().get(f"/v1/clusters/{name}")
    if output is Format.TABLE:
        render(_summary(cluster), output)
        render(cluster["nodes"], output, ["name", "rack", "leaf", "state"])
    else:
        render(cluster, output)


@app.command()
def delete(name: str) -> None:
    """Release a cluster's nodes (they stay in their lifecycle state) and forget it."""
    with api_errors():
        client().delete(f"/v1/clusters/{name}")
    console.print(f"deleted cluster {name}")


@app.command("render")
def render_files(
    name: str,
    directory: Annotated[Path, typer.Option("--dir", help="where to write the files")],
) -> None:
    """Write what the scheduler needs: slurm.conf, gres.conf, topology.conf or manifests."""
    with api_errors():
        files: dict[str, str] = client().get(f"/v1/clusters/{name}/files")
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in sorted(files.items()):
        (directory / file_name).write_text(text)
        if text.startswith("#!"):  # sacctmgr.sh and the power-saving programs
            (directory / file_name).chmod(0o755)
        console.print(f"wrote {directory / file_name}")


@app.command()
def configure(
    name: str,
    slurm_conf: Annotated[str | None, typer.Option(
        help="slurm.conf path on the API host; push writes its directory")] = None,
    slurm_prefix: Annotated[str | None, typer.Option(
        help='runs Slurm commands, e.g. "nsenter --net=/run/netns/x" or "ssh head"')] = None,
    slurm_timeout: Annotated[float | None, typer.Option(help="seconds per Slurm command")]
    = None,
    kubectl: Annotated[str | None, typer.Option(
        help='kubectl command, e.g. "kubectl --kubeconfig /etc/mf/admin.conf"')] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="YAML/JSON merged into scheduler_config (site, qos, power_saving...)")]
    = None,
    output: Output = Format.TABLE,
) -> None:
    """Say how metalfleet reaches the cluster's scheduler (admin); merges into what is set."""
    patch: dict[str, Any] = {}
    if config_file is not None:
        patch = yaml.safe_load(config_file.read_text()) or {}
    slurm = dict(patch.get("slurm") or {})
    for key, value in (("conf", slurm_conf), ("timeout_s", slurm_timeout),
                       ("prefix", shlex.split(slurm_prefix) if slurm_prefix else None)):
        if value is not None:
            slurm[key] = value
    if slurm:
        patch["slurm"] = slurm
    if kubectl is not None:
        patch["kubernetes"] = {**(patch.get("kubernetes") or {}),
                               "kubectl": shlex.split(kubectl)}
    with api_errors():
        cluster = client().patch(f"/v1/clusters/{name}", {"scheduler_config": patch})
    render(cluster["scheduler_config"], output)


@app.command()
def push(name: str, output: Output = Format.TABLE) -> None:
    """Write the scheduler's files where it reads them and reload it (scontrol reconfigure,
    kubectl apply); says what changed."""
    with api_errors():
        result: dict[str, Any] = client().post(f"/v1/clusters/{name}/push")
    if output is not Format.TABLE:
        render(result, output)
        return
    render([{"file": f, "status": s} for f, s in sorted(result["files"].items())], output,
           ["file", "status"])
    for key in ("nodes_added", "nodes_removed"):
        if result[key]:
            console.print(f"{key.replace('_', ' ')}: {', '.join(result[key])}")
    if result["output"]:
        console.print(result["output"])
    if result["restart_required"]:
        console.print("[yellow]restart required[/]: the files are written, Slurm was not "
                      "reconfigured")


@app.command()
def drain(
    name: str, node: str,
    reason: Annotated[str, typer.Option(help="why; the scheduler shows it")],
) -> None:
    """Stop the cluster's scheduler from starting work on NODE (Slurm drain, kubectl drain)."""
    with api_errors():
        out = client().post(f"/v1/clusters/{name}/nodes/{node}/drain", {"reason": reason})
    console.print(f"drained {node} in {out['scheduler']}: {out['detail']}")


@app.command()
def resume(name: str, node: str) -> None:
    """Give NODE back to the cluster's scheduler (Slurm resume, kubectl uncordon)."""
    with api_errors():
        out = client().post(f"/v1/clusters/{name}/nodes/{node}/resume")
    console.print(f"resumed {node} in {out['scheduler']}")


@app.command()
def quota(
    tenant: str,
    node_class: Annotated[str, typer.Option("--class", help="node class")],
    max_nodes: Annotated[int | None, typer.Option("--max", help="most nodes; omit to show")]
    = None,
    remove: Annotated[bool, typer.Option("--remove", help="drop the quota")] = False,
    output: Output = Format.TABLE,
) -> None:
    """Set (admin), remove or show a tenant's quota for a node class."""
    with api_errors():
        api = client()
        if remove:
            api.delete(f"/v1/quotas/{tenant}/{node_class}")
            console.print(f"removed the quota of {tenant} for {node_class}")
            return
        if max_nodes is not None:
            render(api.request("PUT", f"/v1/quotas/{tenant}/{node_class}",
                               json={"max_nodes": max_nodes}), output)
            return
        rows = [q for q in api.get("/v1/quotas")
                if q["tenant"] == tenant and q["node_class"] == node_class]
    render(rows, output, ["tenant", "node_class", "max_nodes", "used"])


@app.command("ansible-inventory")
def ansible_inventory(
    list_: Annotated[bool, typer.Option("--list", help="all groups and hosts (Ansible)")] = False,
    host: Annotated[str | None, typer.Option("--host", help="one host's variables")] = None,
) -> None:
    """Ansible dynamic inventory: `ansible-inventory -i <script running this> --list`."""
    with api_errors():
        data: dict[str, Any] = client().get("/v1/ansible/inventory")
    if host is not None:
        typer.echo(json.dumps(data["_meta"]["hostvars"].get(host, {}), indent=2))
        return
    if not list_:
        typer.echo("give --list or --host NAME", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(data, indent=2))
