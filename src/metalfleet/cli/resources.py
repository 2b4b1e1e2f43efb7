"""`metalfleet site|rack|switch|network|class|tenant|image ...`: the same verbs for each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metalfleet.cli.common import Output, api_errors, client, load_file, parse_sets
from metalfleet.cli.output import Format, console, err_console, render

RESOURCES: dict[str, tuple[str, str, list[str]]] = {
    # command: (API path, help, table columns)
    "site": ("sites", "Sites (data centres).", ["name", "location", "description"]),
    "rack": ("racks", "Racks in a site.", ["name", "site", "u_height", "power_budget_w"]),
    "switch": ("switches", "Leaf and spine switches.",
               ["name", "rack", "role", "fabric", "model", "port_count"]),
    "switch-link": ("switch-links", "Cables between switch ports.",
                    ["name", "switch", "port", "peer_switch", "peer_port"]),
    "network": ("networks", "Networks with roles, VLANs and IPAM.",
                ["name", "role", "vlan_id", "cidr", "gateway", "dhcp_start", "dhcp_end", "mtu"]),
    "class": ("node-classes", "Node classes (flavors of whole machines).",
              ["name", "gpu_model", "gpu_count", "cpu_sockets", "memory_gib", "ib_ports"]),
    "tenant": ("tenants", "Tenants.", ["name", "description"]),
    "image": ("images", "OS images.",
              ["name", "os", "disk_format", "size_bytes", "cuda_version", "location"]),
}


def build(command: str, path: str, help_text: str, columns: list[str]) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True)

    @group.command("list")
    def list_items(output: Output = Format.TABLE) -> None:
        with api_errors():
            render(client().list_all(f"/v1/{path}", limit=500), output, columns)

    @group.command()
    def show(name: str, output: Output = Format.TABLE) -> None:
        with api_errors():
            render(client().get(f"/v1/{path}/{name}"), output)

    @group.command()
    def create(
        name: Annotated[str | None, typer.Argument()] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="key=value")] = None,
        file: Annotated[Path | None, typer.Option("--file", "-f")] = None,
        output: Output = Format.TABLE,
    ) -> None:
        body = load_file(file) if file else {}
        if not isinstance(body, dict):
            err_console.print("[red]error:[/] the file must hold one mapping")
            raise typer.Exit(2)
        body.update(parse_sets(set_))
        if name:
            body["name"] = name
        with api_errors():
            render(client().post(f"/v1/{path}", body), output)

    @group.command()
    def update(name: str,
               set_: Annotated[list[str], typer.Option("--set", help="key=value")],
               output: Output = Format.TABLE) -> None:
        with api_errors():
            render(client().patch(f"/v1/{path}/{name}", parse_sets(set_)), output)

    @group.command()
    def delete(name: str) -> None:
        with api_errors():
            client().delete(f"/v1/{path}/{name}")
        console.print(f"deleted {command} {name}")

    return group


def register(app: typer.Typer) -> dict[str, typer.Typer]:
    groups = {}
    for command, (path, help_text, columns) in RESOURCES.items():
        groups[command] = build(command, path, help_text, columns)
        app.add_typer(groups[command], name=command)
    return groups
