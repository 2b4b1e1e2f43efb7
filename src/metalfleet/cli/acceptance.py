"""`metalfleet acceptance ...`: a class's test plan and the runs stored per node."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from metalfleet.cli.common import Output, api_errors, client
from metalfleet.cli.output import Format, console, render

app = typer.Typer(help="Acceptance tests: plans per node class, runs per burn-in.",
                  no_args_is_help=True)

RUN_COLUMNS = ["id", "reason", "passed", "node_class", "started_at", "finished_at"]
STEP_COLUMNS = ["step", "status", "measured", "unit", "threshold", "spec"]
PLAN_COLUMNS = ["step", "unit", "spec", "fraction", "threshold", "source"]


def _show_run(run: dict[str, Any], output: Format) -> None:
    if output is not Format.TABLE:
        render(run, output)
        return
    verdict = {True: "[green]passed[/]", False: "[bold red]failed[/]"}.get(run["passed"],
                                                                            "running")
    console.print(f"{run['node']}: {run['reason']} run {run['id']} {verdict} "
                  f"(class {run['node_class'] or '-'}, started {run['started_at']})")
    rows = [{**step, "status": _status(step["status"])} for step in run["results"]]
    render(rows, output, STEP_COLUMNS)
    for step in run["results"]:  # below the table: details are sentences, not cells
        console.print(f"[bold]{step['step']}[/]: {step['detail']}", highlight=False)


def _status(status: str) -> str:
    colour = {"pass": "green", "fail": "bold red"}.get(status, "dim")
    return f"[{colour}]{status}[/]"


@app.command()
def last(
    node: str,
    reason: Annotated[str | None, typer.Option(help="burn-in or revalidation")] = None,
    output: Output = Format.TABLE,
) -> None:
    """The steps of NODE's most recent acceptance run."""
    with api_errors():
        page = client().get(f"/v1/nodes/{node}/acceptance-runs", limit=1, reason=reason)
    if not page["items"]:
        console.print(f"[dim]{node} has no acceptance run yet[/]")
        raise typer.Exit(1)
    _show_run(page["items"][0], output)


@app.command()
def runs(
    node: str,
    reason: Annotated[str | None, typer.Option(help="burn-in or revalidation")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    output: Output = Format.TABLE,
) -> None:
    """NODE's acceptance runs, newest first."""
    with api_errors():
        page = client().get(f"/v1/nodes/{node}/acceptance-runs", limit=limit, reason=reason)
    render(page["items"], output, RUN_COLUMNS)


@app.command()
def show(run_id: str, output: Output = Format.TABLE) -> None:
    """One acceptance run, step by step."""
    with api_errors():
        _show_run(client().get(f"/v1/acceptance-runs/{run_id}"), output)


@app.command()
def plan(node_class: str, output: Output = Format.TABLE) -> None:
    """The acceptance plan of NODE_CLASS: each step's spec, fraction and threshold."""
    with api_errors():
        answer = client().get(f"/v1/node-classes/{node_class}/acceptance-plan")
    if output is Format.TABLE:
        render(answer["steps"], output, PLAN_COLUMNS)
    else:
        render(answer, output)
