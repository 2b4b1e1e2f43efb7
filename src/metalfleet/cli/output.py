"""Render API answers as a table, JSON or YAML."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


STATE_COLOURS = {
    "available": "green", "active": "bold green", "enrolled": "white",
    "manageable": "cyan", "inspected": "cyan",
}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _styled(column: str, value: Any) -> str:
    text = _cell(value)
    if column == "state":
        if text.endswith("-failed"):
            return f"[bold red]{text}[/]"
        colour = STATE_COLOURS.get(text)
        if colour is None and text.endswith("ing"):
            colour = "yellow"
        return f"[{colour}]{text}[/]" if colour else text
    if column == "health" and text != "ok":
        return f"[red]{text}[/]"
    return text


def render(data: Any, fmt: Format, columns: list[str] | None = None) -> None:
    if fmt is Format.JSON:
        console.print_json(json.dumps(data, default=str))
        return
    if fmt is Format.YAML:
        console.print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")
        return
    rows = data if isinstance(data, list) else None
    if rows is None:
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for key, value in data.items():
            if key in ("inventory",) and value:
                value = f"{len(value)} sections (use -o yaml to see them)"
            table.add_row(key, _styled(key, value))
        console.print(table)
        return
    if not rows:
        console.print("[dim]nothing found[/]")
        return
    columns = columns or list(rows[0].keys())
    table = Table()
    for column in columns:
        table.add_column(column.upper().replace("_", " "))
    for row in rows:
        table.add_row(*(_styled(c, _dig(row, c)) for c in columns))
    console.print(table)


def _dig(row: dict[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
