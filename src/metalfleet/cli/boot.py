"""`metalfleet boot dhcp`: DHCP and TFTP for a provisioning network (runs dnsmasq)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from metalfleet.cli.output import console, err_console

app = typer.Typer(help="Network boot services.", no_args_is_help=True)


@app.command()
def dhcp(
    network: Annotated[str, typer.Option(help="the provisioning network's name")],
    interface: Annotated[str, typer.Option(help="the host interface on that network")],
    api_url: Annotated[str, typer.Option(help="the API URL as nodes on that network reach it")],
    proxy: Annotated[bool, typer.Option(help="proxy-DHCP beside an existing DHCP server")] = False,
    refresh: Annotated[float, typer.Option(help="seconds between fleet re-reads")] = 10.0,
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="METALFLEET_DATA_DIR")] = Path(
        "./metalfleet-data"),
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="METALFLEET_DATABASE_URL")] = None,
) -> None:
    """Run dnsmasq for NETWORK on INTERFACE until stopped; reloads when nodes change."""
    from metalfleet.boot.dhcp_service import DhcpService, settings_for_network
    from metalfleet.boot.dnsmasq import Dnsmasq
    from metalfleet.config import Settings
    from metalfleet.core.errors import MetalfleetError
    from metalfleet.db.session import Database

    db = Database(Settings(data_dir=data_dir, database_url=database_url)
                  .resolved_database_url())
    state_dir = data_dir / "dhcp" / network
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        settings = settings_for_network(db, network, interface, api_url,
                                        "proxy" if proxy else "full")
        service = DhcpService(db, Dnsmasq(settings, state_dir), network, refresh_s=refresh)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        console.print(f"DHCP/TFTP for {network} on {interface} ({settings.mode}); "
                      f"state in {state_dir}")
        service.serve(stop)
    except MetalfleetError as exc:
        err_console.print(f"[bold red]error:[/] {exc.detail}")
        raise typer.Exit(1) from None
