"""`metalfleet health ...` and `metalfleet ticket ...`: node health, signals, repair tickets."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from metalfleet.cli.common import Output, api_errors, client
from metalfleet.cli.output import Format, console, render

app = typer.Typer(help="Node health: active signals with their evidence.",
                  no_args_is_help=True)
tickets = typer.Typer(help="Repair tickets: open by hand, list, show, resolve after repair.",
                      no_args_is_help=True)

SIGNAL_COLUMNS = ["node", "source", "check", "component", "severity", "status", "strikes",
                  "last_seen", "message"]
TICKET_COLUMNS = ["id", "node", "status", "component", "cluster", "replacement_node",
                  "opened_at", "summary"]


@app.command()
def show(node: str, output: Output = Format.TABLE) -> None:
    """A node's health, its active signals and its open ticket."""
    with api_errors():
        health: dict[str, Any] = client().get(f"/v1/nodes/{node}/health")
    if output is not Format.TABLE:
        render(health, output)
        return
    held = (f", maintenance: {health['maintenance_reason']}" if health["maintenance"] else "")
    console.print(f"[bold]{health['node']}[/]: health {health['health']}{held}")
    if health["signals"]:
        render(health["signals"], output, SIGNAL_COLUMNS)
    ticket = health.get("ticket")
    if ticket:
        console.print(f"open ticket {ticket['id']}: {ticket['summary']}"
                      + (f" (replaced by {ticket['replacement_node']})"
                         if ticket["replacement_node"] else ""))


@app.command()
def signals(
    node: Annotated[str | None, typer.Option(help="only this node")] = None,
    status: Annotated[str | None, typer.Option(help="active or cleared")] = None,
    check: Annotated[str | None, typer.Option(help="e.g. gpu-xid")] = None,
    output: Output = Format.TABLE,
) -> None:
    """List health signals (every page)."""
    with api_errors():
        items = client().list_all("/v1/health/signals", node=node, status=status, check=check,
                                  limit=500)
    render(items, output, SIGNAL_COLUMNS)


@tickets.command("list")
def list_tickets(
    status: Annotated[str | None, typer.Option(help="open or resolved")] = None,
    node: Annotated[str | None, typer.Option(help="only this node")] = None,
    output: Output = Format.TABLE,
) -> None:
    """List repair tickets."""
    with api_errors():
        items = client().list_all("/v1/repair-tickets", status=status, node=node, limit=500)
    render(items, output, TICKET_COLUMNS)


@tickets.command("show")
def show_ticket(ticket_id: str, output: Output = Format.TABLE) -> None:
    """One ticket with its evidence."""
    with api_errors():
        render(client().get(f"/v1/repair-tickets/{ticket_id}"), output)


@tickets.command("open")
def open_ticket(
    node: str,
    summary: Annotated[str, typer.Option(help="what is wrong")],
    component: Annotated[str, typer.Option(help="e.g. GPU3, PSU1")] = "",
    output: Output = Format.TABLE,
) -> None:
    """Open a ticket by hand: the node is drained and put in maintenance."""
    with api_errors():
        render(client().post("/v1/repair-tickets", {"node": node, "component": component,
                                                     "summary": summary}), output)


@tickets.command("resolve")
def resolve_ticket(
    ticket_id: str,
    note: Annotated[str, typer.Option(help="what was repaired")],
    output: Output = Format.TABLE,
) -> None:
    """The node was repaired: clear its signals and re-validate it; the ticket resolves when
    the acceptance run passes."""
    with api_errors():
        render(client().post(f"/v1/repair-tickets/{ticket_id}/resolve", {"note": note}),
               output)
