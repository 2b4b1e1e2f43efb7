"""Options and helpers every CLI command shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from metalfleet.cli.client import ApiError, Client, resolve_connection
from metalfleet.cli.output import Format, err_console

Output = Annotated[Format, typer.Option("--output", "-o", help="table, json or yaml")]
UrlOpt = Annotated[str | None, typer.Option("--url", envvar="METALFLEET_URL",
                                            help="API URL [default: http://127.0.0.1:8080]")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="METALFLEET_TOKEN",
                                              help="API token [default: <data-dir>/admin.token]")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", envvar="METALFLEET_DATA_DIR",
                                                 help="where to find admin.token")]


class Globals:
    url: str | None = None
    token: str | None = None
    data_dir: Path | None = None


GLOBALS = Globals()


def client() -> Client:
    return Client(resolve_connection(GLOBALS.url, GLOBALS.token, GLOBALS.data_dir))


@contextmanager
def api_errors() -> Iterator[None]:
    """Print an API problem as one clear line and exit non-zero."""
    try:
        yield
    except ApiError as exc:
        status = f" ({exc.status})" if exc.status else ""
        err_console.print(f"[bold red]error{status}:[/] {exc.title}: {exc.detail}")
        for item in exc.body.get("errors", []) or []:
            where = item.get("path") or item.get("field") or ""
            err_console.print(f"  - {where}: {item.get('message')}")
        raise typer.Exit(1) from None


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """--set key=value pairs; values are YAML scalars (42 -> int, true -> bool)."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            err_console.print(f"[red]error:[/] --set {pair!r} must look like key=value")
            raise typer.Exit(2)
        values[key] = yaml.safe_load(raw) if raw else ""
    return values


def load_file(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        err_console.print(f"[red]error:[/] cannot read {path}: {exc.strerror}")
        raise typer.Exit(2) from None
    except yaml.YAMLError as exc:
        err_console.print(f"[red]error:[/] {path} is not valid YAML: {exc}")
        raise typer.Exit(2) from None


def run(action: Callable[[], Any]) -> Any:
    with api_errors():
        return action()
