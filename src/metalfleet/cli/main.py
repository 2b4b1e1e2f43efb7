"""The `metalfleet` command: start the services, and talk to the API."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from metalfleet import __version__
from metalfleet.cli import (
    acceptance,
    admin,
    ansible,
    audit,
    boot,
    clusters,
    health,
    images,
    lab,
    nodes,
    observability,
    resources,
    slurm,
    switches,
)
from metalfleet.cli.common import GLOBALS, DataDirOpt, TokenOpt, UrlOpt
from metalfleet.cli.output import console
from metalfleet.config import DEFAULT_DATA_DIR, Settings

app = typer.Typer(
    help="metalfleet: a bare-metal cloud for GPU and HPC clusters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(url: UrlOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = None) -> None:
    GLOBALS.url = url
    GLOBALS.token = token
    GLOBALS.data_dir = data_dir


ServeDataDir = Annotated[Path, typer.Option("--data-dir", envvar="METALFLEET_DATA_DIR",
                                            help="SQLite database, keys, tokens, lab state")]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", envvar="METALFLEET_DATABASE_URL",
    help="e.g. postgresql+psycopg://user@host/db [default: SQLite in --data-dir]")]


def _settings(data_dir: Path, database_url: str | None, host: str, port: int,
              workers: int, agent_timeout: float = 30.0) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, host=host, port=port,
                    conductor_workers=workers, agent_heartbeat_timeout_s=agent_timeout)


AgentTimeout = Annotated[float, typer.Option(
    "--agent-timeout", help="seconds of agent silence that fail a deploy or clean")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def up(
    data_dir: ServeDataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="address the API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port")] = 8080,
    lab: Annotated[int, typer.Option(help="add N emulated servers (the lab fleet)")] = 0,
    database_url: DatabaseUrl = None,
    conductor: Annotated[bool, typer.Option(help="run a conductor in this process")] = True,
    workers: Annotated[int, typer.Option(help="conductor worker threads")] = 8,
    agent_timeout: AgentTimeout = 30.0,
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", envvar="METALFLEET_TLS_CERT",
        help="serve HTTPS with this PEM certificate (chain); needs --tls-key")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", envvar="METALFLEET_TLS_KEY", help="the certificate's PEM private key")] = None,
    behind_tls: Annotated[bool, typer.Option(
        "--behind-tls", envvar="METALFLEET_BEHIND_TLS",
        help="a proxy in front terminates TLS: mark the dashboard cookie Secure")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the API, a conductor and the web root in one process (SQLite by default)."""
    from metalfleet.core.errors import ValidationError
    from metalfleet.private_files import make_private_dir
    from metalfleet.server import bootstrap, serve

    _logging(verbose)
    settings = _settings(data_dir, database_url, host, port, workers, agent_timeout)
    settings.tls_cert, settings.tls_key = tls_cert, tls_key
    settings.behind_tls = settings.behind_tls or behind_tls
    try:
        context = bootstrap(settings)
    except ValidationError as exc:
        console.print(f"[bold red]error:[/] {exc.detail}")
        raise typer.Exit(2) from None
    extra = []
    if lab:
        from metalfleet.lab import plugin
        from metalfleet.lab.runner import LAB_BMC_HEALTH_INTERVAL_S, lab_task

        make_private_dir(data_dir / "lab")  # the lab's BMC state and configs: 0700
        plugin.enable(context)  # before the app is built: the lab's routes join it
        if settings.bmc_health_interval_s is None:  # lab faults should show within seconds
            settings.bmc_health_interval_s = LAB_BMC_HEALTH_INTERVAL_S
        extra.append(lab_task(lab))
    scheme = "https" if settings.serves_tls else "http"
    console.print(f"metalfleet {__version__} on {scheme}://{host}:{port}  data: {data_dir}  "
                  f"admin token: {data_dir / 'admin.token'}")
    asyncio.run(serve(settings, api=True, conductor=conductor, extra_tasks=extra,
                      context=context))


@app.command("conductor")
def run_conductor(
    data_dir: ServeDataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    workers: Annotated[int, typer.Option(help="conductor worker threads")] = 8,
    agent_timeout: AgentTimeout = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run only a conductor (scale out: several of these beside API processes on PostgreSQL).

    A conductor serves no HTTP (it has no listener, so no --tls-* options); its database
    connection uses TLS through the URL, e.g. ...?sslmode=verify-full (docs/operations.md).
    """
    from metalfleet.server import serve

    _logging(verbose)
    settings = _settings(data_dir, database_url, "127.0.0.1", 0, workers, agent_timeout)
    asyncio.run(serve(settings, api=False, conductor=True))


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


app.add_typer(nodes.app, name="node")
app.add_typer(clusters.app, name="cluster")
app.add_typer(ansible.app, name="ansible")
app.add_typer(slurm.app, name="slurm")
app.add_typer(lab.app, name="lab")
app.add_typer(boot.app, name="boot")
app.add_typer(observability.app, name="observability")
app.add_typer(acceptance.app, name="acceptance")
app.add_typer(health.app, name="health")
app.add_typer(health.tickets, name="ticket")
app.add_typer(audit.app, name="audit")
groups = resources.register(app)
images.add_commands(groups["image"])
switches.add_commands(groups["switch"])


@groups["image"].command("build-ramdisk")
def build_ramdisk(
    out: Annotated[Path, typer.Option("--out", help="where to write kernel and initrd")] = Path(
        "./metalfleet-data/ramdisk"),
) -> None:
    """Build the deploy ramdisk (kernel + initramfs with the agent) from Debian packages."""
    from metalfleet.boot.ramdisk import RamdiskBuildError
    from metalfleet.boot.ramdisk import build_ramdisk as build

    try:
        ramdisk = build(out)
    except RamdiskBuildError as exc:
        console.print(f"[bold red]error:[/] {exc.detail}")
        raise typer.Exit(1) from None
    console.print(f"kernel {ramdisk.kernel} ({ramdisk.kernel_version})")
    console.print(f"initrd {ramdisk.initrd}: {ramdisk.initrd_bytes / 1e6:.1f} MB, "
                  f"{ramdisk.files} files, {len(ramdisk.stdlib_modules)} stdlib modules")
app.add_typer(admin.tokens, name="token")
app.add_typer(admin.ip, name="ip")
app.command()(admin.events)
app.command()(admin.plan)
app.command()(admin.apply)
