"""`metalfleet image register|verify|convert`: image files on the API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from metalfleet.cli.common import Output, api_errors, client
from metalfleet.cli.output import Format, err_console, render

CHUNK = 1 << 20


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def add_commands(group: typer.Typer) -> None:
    @group.command("register")
    def register(
        name: str,
        file: Annotated[Path, typer.Option("--file", "-f", help="the image file to upload")],
        os: Annotated[str, typer.Option("--os", help="e.g. ubuntu-24.04")] = "",
        output: Output = Format.TABLE,
    ) -> None:
        """Upload a local image file (raw or qcow2); the server computes its checksum and format.

        To register an image that is already on a web server, use `image create --set
        location=URL`.
        """
        if not file.is_file():
            err_console.print(f"[red]error:[/] {file} is not a file")
            raise typer.Exit(2)
        with api_errors():
            render(client().request("POST", "/v1/images/upload",
                                    params={"name": name, "os": os},
                                    content=_chunks(file), timeout=None), output)

    @group.command("verify")
    def verify(name: str, output: Output = Format.TABLE) -> None:
        """Download the image from its location and check checksum, size and format."""
        with api_errors():
            render(client().request("POST", f"/v1/images/{name}/verify", timeout=None), output)

    @group.command("convert")
    def convert(name: str, output: Output = Format.TABLE) -> None:
        """Convert a qcow2 image to raw on the server (needed before deploying it)."""
        with api_errors():
            render(client().request("POST", f"/v1/images/{name}/convert", timeout=None),
                   output)
