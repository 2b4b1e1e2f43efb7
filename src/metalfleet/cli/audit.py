"""`metalfleet audit`: search the audit log, or export it as JSON lines for a SIEM or archive."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from metalfleet.cli.client import ApiError
from metalfleet.cli.common import Output, api_errors, client
from metalfleet.cli.output import Format, console, render

app = typer.Typer(help="The audit log (admins): who changed what, from where, how it ended. "
                  "Without a command: search it, newest first; `export`: JSON lines.",
                  invoke_without_command=True)

COLUMNS = ["time", "principal", "source", "method", "path", "target", "status"]  # -o json: all
Principal = Annotated[str | None, typer.Option(help="token name (or 'anonymous')")]
Target = Annotated[str | None, typer.Option(help="the resource, e.g. a node name")]
Since = Annotated[datetime | None, typer.Option(help="from this time (UTC unless given)")]
Until = Annotated[datetime | None, typer.Option(help="before this time")]
OutcomeOpt = Annotated[str | None, typer.Option(help="ok (status < 400) or refused (>= 400)")]
Method = Annotated[str | None, typer.Option(help="POST, PUT, PATCH or DELETE")]
PathOpt = Annotated[str | None, typer.Option("--path", help="path prefix, e.g. /v1/tokens")]


def _params(principal: str | None, target: str | None, since: datetime | None,
            until: datetime | None, outcome: str | None, method: str | None,
            path: str | None) -> dict[str, Any]:
    values = {"principal": principal, "target": target, "outcome": outcome, "method": method,
              "path": path, "since": since.isoformat() if since else None,
              "until": until.isoformat() if until else None}
    return {k: v for k, v in values.items() if v is not None}


@app.callback()
def search(
    ctx: typer.Context,
    principal: Principal = None,
    target: Target = None,
    since: Since = None,
    until: Until = None,
    outcome: OutcomeOpt = None,
    method: Method = None,
    path: PathOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="rows to show (newest first)")] = 100,
    output: Output = Format.TABLE,
) -> None:
    """Search the audit log, newest first (admins only)."""
    if ctx.invoked_subcommand is not None:
        return
    params = _params(principal, target, since, until, outcome, method, path)
    items: list[Any] = []
    cursor: str | None = None
    with api_errors():
        while len(items) < limit:
            page = client().get("/v1/audit", cursor=cursor, limit=min(1000, limit - len(items)),
                                **params)
            items += page["items"]
            cursor = page.get("next")
            if not cursor:
                break
    render(items, output, COLUMNS)


@app.command("export")
def export(
    out: Annotated[Path | None, typer.Option("--out", help="file to write [default: stdout]")]
    = None,
    after: Annotated[int | None, typer.Option(help="only rows after this id (resume)")] = None,
    principal: Principal = None,
    target: Target = None,
    since: Since = None,
    until: Until = None,
    outcome: OutcomeOpt = None,
) -> None:
    """Write the audit log as JSON lines, oldest first (for a SIEM or an archive)."""
    params = _params(principal, target, since, until, outcome, None, None)
    if after is not None:
        params["after"] = after
    with api_errors():
        count = _stream(params, out)
    if out is not None:
        console.print(f"wrote {count} audit rows to {out}")


def _stream(params: dict[str, Any], out: Path | None) -> int:
    api = client()
    count = 0
    try:
        with api.http.stream("GET", "/v1/audit/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                body = response.json() if response.content else {}
                raise ApiError(response.status_code, str(body.get("title", "Error")),
                               str(body.get("detail", "")), body)
            sink = out.open("w", encoding="utf-8") if out is not None else sys.stdout
            try:
                for line in response.iter_lines():
                    if line:
                        sink.write(line + "\n")
                        count += 1
            finally:
                if out is not None:
                    sink.close()
    except httpx.HTTPError as exc:
        raise ApiError(0, "Request failed", f"{exc}", {}) from exc
    return count
