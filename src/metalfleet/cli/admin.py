"""`metalfleet token|events|ip|plan|apply`: tokens, the event log, IPAM, the fleet file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from metalfleet.cli.common import Output, api_errors, client, load_file
from metalfleet.cli.output import Format, console, err_console, render

tokens = typer.Typer(help="API tokens (admin only).", no_args_is_help=True)
ip = typer.Typer(help="IP address management.", no_args_is_help=True)


@tokens.command("list")
def list_tokens(output: Output = Format.TABLE) -> None:
    """Tokens with their expiry and last use (written at most once a minute)."""
    with api_errors():
        render(client().get("/v1/tokens")["items"], output,
               ["name", "role", "tenant", "prefix", "expires_at", "last_used_at", "created_at"])


EXPIRES_IN_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expires_in(text: str) -> timedelta:
    """'90m', '12h', '30d', '2w' -> a positive duration (BadParameter otherwise)."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in EXPIRES_IN_UNITS or not value.isdigit() or int(value) == 0:
        raise typer.BadParameter(f"{text!r}: a whole number and a unit, like 90m, 12h, 30d, 2w")
    return timedelta(seconds=int(value) * EXPIRES_IN_UNITS[unit])


@tokens.command("create")
def create_token(name: str, role: Annotated[str, typer.Option(
                     help="admin, operator, member or viewer")],
                 tenant: Annotated[str | None, typer.Option()] = None,
                 expires_in: Annotated[str | None, typer.Option(
                     "--expires-in", help="lifetime, like 12h, 30d or 2w [default: never]")]
                 = None) -> None:
    """Create a token; its secret is printed once."""
    body: dict[str, Any] = {"name": name, "role": role, "tenant": tenant}
    if expires_in is not None:
        body["expires_at"] = (datetime.now(UTC) + parse_expires_in(expires_in)).isoformat()
    with api_errors():
        made = client().post("/v1/tokens", body)
    console.print(made["token"])
    if made.get("expires_at"):
        err_console.print(f"[dim]expires {made['expires_at']}[/]")
    err_console.print("[dim]store it now: it is not shown again[/]")


@tokens.command("delete")
def delete_token(name: str) -> None:
    with api_errors():
        client().delete(f"/v1/tokens/{name}")
    console.print(f"deleted token {name}")


@ip.command("list")
def list_ips(network: str, output: Output = Format.TABLE) -> None:
    with api_errors():
        render(client().get(f"/v1/networks/{network}/allocations")["items"], output,
               ["address", "node", "purpose", "created_at"])


@ip.command("allocate")
def allocate(network: str, address: Annotated[str | None, typer.Option()] = None,
             node: Annotated[str | None, typer.Option()] = None,
             purpose: str = "", output: Output = Format.TABLE) -> None:
    with api_errors():
        render(client().post(f"/v1/networks/{network}/allocations",
                             {"address": address, "node": node, "purpose": purpose}), output)


@ip.command("release")
def release(network: str, address: str) -> None:
    with api_errors():
        client().delete(f"/v1/networks/{network}/allocations/{address}")
    console.print(f"released {address} in {network}")


def events(
    node: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    since: Annotated[datetime | None, typer.Option()] = None,
    until: Annotated[datetime | None, typer.Option()] = None,
    search: Annotated[str | None, typer.Option("--search", "-s")] = None,
    newest: Annotated[bool, typer.Option("--newest", help="newest first")] = False,
    limit: int = 200,
    output: Output = Format.TABLE,
) -> None:
    """Search the fleet's event log: transitions, alerts, BMC log entries, health, agent steps.

    --kind takes one kind or several separated by commas (alert,bmc-log,health).
    """
    with api_errors():
        items = client().get("/v1/events", node=node, kind=kind, q=search, limit=limit,
                             since=since.isoformat() if since else None,
                             until=until.isoformat() if until else None,
                             order="desc" if newest else "asc")["items"]
    render(items, output, ["time", "node", "kind", "actor", "from_state", "to_state", "message"])


PRUNE_HELP = "also delete what the file omits, in the sections it lists"


def _fleet(file: Path, prune: bool, apply: bool, output: Output) -> None:
    fleet = load_file(file)
    with api_errors():
        result: dict[str, Any] = client().post(
            "/v1/fleet/apply" if apply else "/v1/fleet/plan", {"fleet": fleet, "prune": prune}
        )
    if output is not Format.TABLE:
        render(result, output)
        return
    symbols = {"create": "[green]+[/]", "update": "[yellow]~[/]", "delete": "[red]-[/]",
               "unmanaged": "[dim]?[/]", "unchanged": " "}
    for change in result["changes"]:
        if change["action"] == "unchanged":
            continue
        console.print(f"{symbols.get(change['action'], ' ')} {change['kind']} "
                      f"[bold]{change['name']}[/] {change['action']}")
        for field, diff in (change.get("fields") or {}).items():
            if diff.get("note"):
                console.print(f"      {field}: {diff['note']}")
            else:
                console.print(f"      {field}: {diff.get('old')!r} -> {diff.get('new')!r}")
    summary = ", ".join(f"{n} {k}" for k, n in result["summary"].items())
    verb = "applied" if result.get("applied") else "plan"
    console.print(f"[bold]{verb}:[/] {summary}")


def plan(file: Annotated[Path, typer.Option("--file", "-f", help="fleet YAML file")],
         prune: Annotated[bool, typer.Option(help=PRUNE_HELP)] = False,
         output: Output = Format.TABLE) -> None:
    """Show what `apply` would change, without changing anything."""
    _fleet(file, prune, False, output)


def apply(file: Annotated[Path, typer.Option("--file", "-f", help="fleet YAML file")],
          prune: Annotated[bool, typer.Option(help=PRUNE_HELP)] = False,
          output: Output = Format.TABLE) -> None:
    """Converge the fleet to the file, in one transaction (all or nothing)."""
    _fleet(file, prune, True, output)
