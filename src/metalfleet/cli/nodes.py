"""`metalfleet node ...`: enrol, list, act on nodes, and wait for them with a progress bar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from metalfleet.cli.client import Client
from metalfleet.cli.common import Output, api_errors, client, load_file, parse_sets
from metalfleet.cli.output import Format, console, err_console, render
from metalfleet.core.states import WORK_STATES

app = typer.Typer(help="Enrol nodes, move them through their lifecycle, watch them.",
                  no_args_is_help=True)

COLUMNS = ["name", "state", "power_state", "health", "maintenance", "node_class", "rack",
           "u_position", "tenant", "image", "progress.percent", "progress.step"]
WORK = {state.value for state in WORK_STATES}


@app.command("list")
def list_nodes(
    state: Annotated[str | None, typer.Option(help="e.g. available")] = None,
    node_class: Annotated[str | None, typer.Option("--class")] = None,
    rack: str | None = None,
    tenant: str | None = None,
    health: str | None = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
    output: Output = Format.TABLE,
) -> None:
    """List nodes (every page), optionally filtered."""
    with api_errors():
        items = client().list_all("/v1/nodes", state=state, health=health, rack=rack,
                                  tenant=tenant, label=label, limit=500,
                                  **{"class": node_class})
    render(items, output, COLUMNS)


@app.command()
def show(name: str, output: Output = Format.TABLE) -> None:
    """Show one node."""
    with api_errors():
        render(client().get(f"/v1/nodes/{name}"), output)


@app.command()
def enroll(
    name: Annotated[str | None, typer.Argument()] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="node as YAML")] = None,
    bmc_driver: Annotated[str, typer.Option(help="redfish or ipmi")] = "redfish",
    bmc_address: Annotated[str | None, typer.Option(
        help="e.g. https://10.0.0.5/redfish/v1/Systems/1")] = None,
    bmc_user: str | None = None,
    bmc_password: Annotated[str | None, typer.Option(envvar="METALFLEET_BMC_PASSWORD")] = None,
    hardware_type: str | None = None,
    mac: Annotated[list[str] | None, typer.Option(help="port MAC, repeatable")] = None,
    rack: str | None = None,
    u: Annotated[int | None, typer.Option(help="U position in the rack")] = None,
    node_class: Annotated[str | None, typer.Option("--class")] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value")] = None,
    output: Output = Format.TABLE,
) -> None:
    """Enrol a node by its BMC (or from a YAML file)."""
    if file is not None:
        body = load_file(file)
    else:
        if not name or not bmc_address:
            err_console.print("[red]error:[/] give NAME and --bmc-address, or --file")
            raise typer.Exit(2)
        body = {
            "name": name,
            "bmc": {"driver": bmc_driver, "address": bmc_address, "username": bmc_user,
                    "password": bmc_password},
            "ports": [{"name": f"eth{i}", "mac": m, "pxe": i == 0}
                      for i, m in enumerate(mac or [])],
            "labels": {k: str(v) for k, v in parse_sets(label).items()},
        }
        for key, value in (("rack", rack), ("u_position", u), ("node_class", node_class),
                           ("hardware_type", hardware_type)):
            if value is not None:
                body[key] = value
    with api_errors():
        render(client().post("/v1/nodes", body), output)


@app.command()
def delete(name: str) -> None:
    """Delete a node that runs nothing."""
    with api_errors():
        client().delete(f"/v1/nodes/{name}")
    console.print(f"deleted node {name}")


@app.command("monitor-credential")
def monitor_credential(
    name: str,
    out: Annotated[Path | None, typer.Option(
        "--out", help="write the credential to this file (mode 0600) instead of printing it")
    ] = None,
    revoke: Annotated[bool, typer.Option("--revoke", help="revoke the node's credential")
                      ] = False,
) -> None:
    """Issue the node's monitor credential (for `metalfleet-agent monitor --token-file`).

    It may post this node's health reports and nothing else; a new one revokes the old, and
    undeploying or deleting the node revokes it. The node's tenant (root) can read it there.
    """
    with api_errors():
        if revoke:
            client().delete(f"/v1/nodes/{name}/monitor-credential")
            console.print(f"revoked the monitor credential of node {name}")
            return
        secret = str(client().post(f"/v1/nodes/{name}/monitor-credential")["credential"])
    if out is None:
        console.print(secret, soft_wrap=True)
        return
    from metalfleet.private_files import write_private

    write_private(out, secret + "\n")  # 0600 from the start, never readable by others
    err_console.print(f"wrote the monitor credential of node {name} to {out} (mode 0600)")


def wait_for(api: Client, name: str, timeout: float) -> dict[str, Any]:
    """Follow a node's work with a progress bar until it leaves the work states."""
    deadline = time.monotonic() + timeout
    node: dict[str, Any] = api.get(f"/v1/nodes/{name}")
    with Progress(TextColumn("[bold]{task.fields[node]}[/] {task.fields[state]}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=err_console, transient=False) as progress:
        task = progress.add_task("", total=100, node=name, state=node["state"])
        while node["state"] in WORK or node.get("target_power_state"):
            progress.update(task, completed=node["progress"]["percent"] or 0,
                            description=node["progress"]["step"] or "",
                            state=node["state"])
            if time.monotonic() > deadline:
                err_console.print(f"[red]timed out after {timeout:.0f} s; the node is still "
                                  f"{node['state']}[/]")
                raise typer.Exit(3)
            time.sleep(0.5)
            node = api.get(f"/v1/nodes/{name}")
        progress.update(task, completed=100 if not node["state"].endswith("-failed") else
                        node["progress"]["percent"] or 0,
                        description=node["progress"]["step"] or "", state=node["state"])
    return node


def act(name: str, action: str, body: dict[str, Any] | None, wait: bool, timeout: float,
        output: Output) -> None:
    with api_errors():
        api = client()
        node = api.post(f"/v1/nodes/{name}/actions/{action}", body or {})
        if wait:
            node = wait_for(api, name, timeout)
    if node["state"].endswith("-failed"):
        err_console.print(f"[bold red]{name} is {node['state']}:[/] {node['last_error']}")
        raise typer.Exit(1)
    if output is not Format.TABLE:
        render(node, output)
    else:
        console.print(f"{name}: [bold]{node['state']}[/] (power {node['power_state']})")


Wait = Annotated[bool, typer.Option("--wait", "-w", help="follow progress until done")]
Timeout = Annotated[float, typer.Option(help="seconds to wait at most")]


def _lifecycle(action: str, doc: str) -> None:
    def command(name: str, wait: Wait = False, timeout: Timeout = 1800.0,
                reason: Annotated[str | None, typer.Option()] = None,
                output: Output = Format.TABLE) -> None:
        act(name, action, {"reason": reason} if reason else None, wait, timeout, output)

    command.__doc__ = doc
    app.command(action)(command)


for _action, _doc in (
    ("manage", "Verify the BMC (enrolled -> manageable)."),
    ("inspect", "Collect the hardware inventory (-> inspected)."),
    ("provide", "Burn in and make available (inspected -> available)."),
    ("undeploy", "Tear down and clean (active -> cleaning -> available)."),
    ("clean", "Wipe the disks again (clean-failed -> available)."),
    ("validate", "Re-run the class's acceptance tests (available -> burning-in -> available)."),
):
    _lifecycle(_action, _doc)


@app.command()
def deploy(name: str, image: Annotated[str, typer.Option(help="image name")],
           wait: Wait = False, timeout: Timeout = 3600.0, output: Output = Format.TABLE) -> None:
    """Write an image to the node and boot it (available -> active)."""
    act(name, "deploy", {"image": image}, wait, timeout, output)


@app.command()
def maintenance(name: str, on: Annotated[bool, typer.Argument(help="on or off")],
                reason: Annotated[str | None, typer.Option()] = None,
                output: Output = Format.TABLE) -> None:
    """Turn maintenance on (with --reason) or off."""
    action = "maintenance-on" if on else "maintenance-off"
    act(name, action, {"reason": reason} if reason else None, False, 0, output)


@app.command()
def power(name: str, state: Annotated[str, typer.Argument(help="on, off or reboot")],
          wait: Wait = False, timeout: Timeout = 300.0, output: Output = Format.TABLE) -> None:
    """Power a node on, off, or reboot it through its BMC."""
    if state not in ("on", "off", "reboot"):
        err_console.print("[red]error:[/] power takes on, off or reboot")
        raise typer.Exit(2)
    act(name, "reboot" if state == "reboot" else f"power-{state}", None, wait, timeout, output)


@app.command()
def wait(name: str, timeout: Timeout = 1800.0) -> None:
    """Wait for a node's current work to end."""
    with api_errors():
        node = wait_for(client(), name, timeout)
    console.print(f"{name}: [bold]{node['state']}[/]")


@app.command()
def events(name: str, output: Output = Format.TABLE) -> None:
    """Show a node's event history."""
    with api_errors():
        items = client().list_all(f"/v1/nodes/{name}/events", limit=1000)
    render(items, output, ["time", "kind", "actor", "from_state", "to_state", "message"])


@app.command()
def update(name: str, set_: Annotated[list[str], typer.Option("--set", help="key=value")],
           output: Output = Format.TABLE) -> None:
    """Change node fields, e.g. --set rack=r2 --set u_position=10."""
    with api_errors():
        render(client().patch(f"/v1/nodes/{name}", parse_sets(set_)), output)
