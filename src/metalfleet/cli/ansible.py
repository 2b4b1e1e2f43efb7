"""`metalfleet ansible ...`: the dynamic inventory and the GPU node playbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metalfleet.cli import clusters
from metalfleet.cli.output import console
from metalfleet.scheduling.ansible import playbooks as bundled

app = typer.Typer(help="Ansible: the fleet's dynamic inventory and GPU node playbooks.",
                  no_args_is_help=True)
app.command("inventory")(clusters.ansible_inventory)


@app.command()
def playbooks(
    directory: Annotated[Path, typer.Option("--dir", help="where to write them")],
    force: Annotated[bool, typer.Option("--force", help="overwrite changed files")] = False,
) -> None:
    """Write the GPU node playbooks and roles (driver, CUDA, container toolkit, tuning)."""
    try:
        written = bundled.write(directory, overwrite=force)
    except FileExistsError as exc:
        console.print(f"[bold red]error:[/] {exc}; pass --force to overwrite")
        raise typer.Exit(1) from None
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"run: ansible-playbook -i <inventory> {directory / 'gpu-node.yml'}")
