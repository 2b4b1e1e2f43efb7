"""`metalfleet observability export DIR`: Prometheus rules, configs and Grafana dashboards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metalfleet.cli.output import console

app = typer.Typer(help="Observability: Prometheus, Alertmanager and Grafana configuration.",
                  no_args_is_help=True)


@app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="where to write the files")],
    url: Annotated[str, typer.Option(
        "--metalfleet-url", help="metalfleet's URL as Prometheus and Alertmanager reach it")
    ] = "http://127.0.0.1:8080",
    alertmanager: Annotated[str, typer.Option(
        help="host:port of Alertmanager, for prometheus.yml")] = "127.0.0.1:9093",
    sd_token_file: Annotated[str, typer.Option(
        help="file with a viewer token for service discovery (relative to prometheus.yml)")
    ] = "metalfleet-sd.token",
    webhook_token_file: Annotated[str, typer.Option(
        help="file with an operator token for the webhook (relative to alertmanager.yml)")
    ] = "metalfleet-webhook.token",
) -> None:
    """Write prometheus/{prometheus,rules,rules_test}.yml, alertmanager/alertmanager.yml and
    grafana/dashboards/{fleet,node,gpu}.json into DIR."""
    from metalfleet.observability.export import ExportOptions, export

    options = ExportOptions(url=url, alertmanager=alertmanager, sd_token_file=sd_token_file,
                            webhook_token_file=webhook_token_file)
    for path in export(directory, options):
        console.print(str(path))
