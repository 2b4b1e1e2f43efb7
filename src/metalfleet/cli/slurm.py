"""`metalfleet slurm suspend|resume HOSTLIST`: Slurm's power-saving programs.

slurmctld runs SuspendProgram/ResumeProgram with a host list; the wrappers metalfleet renders
call these commands. Resume waits until every node reports power on, so Slurm's ResumeTimeout
sees a failure as a non-zero exit with the nodes that did not come back.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from metalfleet.cli.common import api_errors, client
from metalfleet.cli.output import console, err_console
from metalfleet.scheduling.hostlist import compress, expand

app = typer.Typer(help="Slurm power saving: power a cluster's nodes off and on.",
                  no_args_is_help=True)

ClusterOpt = Annotated[str, typer.Option("--cluster", help="the metalfleet cluster")]


def _power(cluster: str, action: str, hostlist: str) -> list[str]:
    with api_errors():
        out: dict[str, Any] = client().post(f"/v1/clusters/{cluster}/power",
                                            {"action": action, "nodes": hostlist})
    return [node["name"] for node in out["nodes"]]


@app.command()
def suspend(hostlist: str, cluster: ClusterOpt) -> None:
    """Power the nodes in HOSTLIST off through their BMC (Slurm's SuspendProgram)."""
    names = _power(cluster, "suspend", hostlist)
    console.print(f"power off requested for {compress(names)}")


@app.command()
def resume(
    hostlist: str, cluster: ClusterOpt,
    timeout: Annotated[float, typer.Option(help="seconds to wait for power on")] = 300.0,
    interval: Annotated[float, typer.Option(help="seconds between checks")] = 2.0,
) -> None:
    """Power the nodes in HOSTLIST on and wait until each reports power on (ResumeProgram)."""
    waiting = set(_power(cluster, "resume", hostlist))
    deadline = time.monotonic() + timeout
    api = client()
    while True:
        with api_errors():
            for name in sorted(waiting):
                node = api.get(f"/v1/nodes/{name}")
                if node["power_state"] == "on" and node["target_power_state"] is None:
                    waiting.discard(name)
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if waiting:
        err_console.print(
            f"[bold red]error:[/] {compress(waiting)} not powered on within {timeout:g} s; "
            "check the BMC (metalfleet node show NAME, its events and bmc_error)")
        raise typer.Exit(1)
    console.print(f"{compress(expand(hostlist))} powered on")
