"""`metalfleet switch access NAME`: how metalfleet reaches a switch to move node ports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metalfleet.cli.common import Output, api_errors, client, parse_sets
from metalfleet.cli.output import Format, err_console, render


def add_commands(group: typer.Typer) -> None:
    @group.command("access")
    def access(
        name: str,
        driver: Annotated[str | None, typer.Option(
            help="none, linux-bridge, linux-bridge-vlan or fake; omit to show the access")] = None,
        address: Annotated[str, typer.Option(help="the switch's SSH host")] = "",
        username: Annotated[str | None, typer.Option()] = None,
        password_file: Annotated[Path | None, typer.Option(
            help="a file holding the SSH password (never on the command line)")] = None,
        info: Annotated[list[str] | None, typer.Option(
            "--info", help="driver_info key=value (port, sudo, bridge, device_type)")] = None,
        output: Output = Format.TABLE,
    ) -> None:
        """Show or set how metalfleet reaches the switch; the password is never shown."""
        with api_errors():
            if driver is None:
                render(client().get(f"/v1/switches/{name}/access"), output)
                return
            body: dict[str, object] = {"driver": driver, "address": address,
                                       "username": username,
                                       "driver_info": parse_sets(info)}
            if password_file is not None:
                try:
                    body["password"] = password_file.read_text().strip()
                except OSError as exc:
                    err_console.print(f"[red]error:[/] cannot read {password_file}: {exc}")
                    raise typer.Exit(2) from exc
            render(client().put(f"/v1/switches/{name}/access", body), output)
