"""`metalfleet lab vms`: real PXE deploys on QEMU virtual machines, next to a running API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from metalfleet.cli.common import Output, api_errors, client
from metalfleet.cli.output import Format, console, err_console, render

app = typer.Typer(help="Lab fleets: QEMU virtual machines behind Redfish BMCs, lab faults.",
                  no_args_is_help=True)


def _ensure_artifacts(data_dir: Path) -> tuple[str, int]:
    """The deploy ramdisk and the vm-tiny image, built into the API's data dir if missing."""
    from metalfleet.boot.ipxe import RAMDISK_INITRD
    from metalfleet.boot.ramdisk import build_ramdisk
    from metalfleet.lab.vm.tiny_image import IMAGE_NAME, build_tiny_image

    if not (data_dir / "ramdisk" / RAMDISK_INITRD).exists():
        err_console.print("building the deploy ramdisk ...")
        build_ramdisk(data_dir / "ramdisk")
    image = data_dir / "images" / f"{IMAGE_NAME}.raw"
    err_console.print("building the vm-tiny image ...")
    _, digest, size = build_tiny_image(image.parent)
    return digest, size


@app.command()
def vms(
    count: Annotated[int, typer.Option(help="how many VMs")] = 2,
    stop: Annotated[bool, typer.Option("--stop", help="stop the VMs and their BMCs")] = False,
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", envvar="METALFLEET_DATA_DIR",
        help="the data dir of the running metalfleet (serves the ramdisk and images)")] = Path(
        "./metalfleet-data"),
) -> None:
    """Start COUNT QEMU VMs with empty disks behind Redfish BMCs and enrol them."""
    from metalfleet.core.errors import MetalfleetError
    from metalfleet.lab.vm import lab

    state_dir = data_dir / "vmlab"
    if stop:
        stopped = lab.stop_daemon(state_dir)
        console.print("VM lab stopped" if stopped else "no VM lab was running")
        return
    api = client()
    try:
        with api_errors():
            api.get("/healthz")
        digest, size = _ensure_artifacts(data_dir)
        vm_list = lab.prepare(state_dir, count, api.connection.url)
        daemon = lab.start_daemon(state_dir)
    except MetalfleetError as exc:
        err_console.print(f"[bold red]error:[/] {exc.detail}")
        raise typer.Exit(1) from None
    guest_api = lab.guest_url(api.connection.url)
    with api_errors():
        image: dict[str, Any] = {"name": "vm-tiny", "os": "busybox (vm-tiny)",
                                 "disk_format": "raw", "sha256": digest, "size_bytes": size,
                                 "location": f"{guest_api}/images/vm-tiny.raw"}
        existing = {i["name"] for i in api.list_all("/v1/images")}
        if "vm-tiny" in existing:
            api.patch("/v1/images/vm-tiny", {"sha256": digest, "size_bytes": size})
        else:
            api.post("/v1/images", image)
        nodes = {n["name"] for n in api.list_all("/v1/nodes")}
        for body in lab.node_bodies(vm_list, int(daemon["port"])):
            if body["name"] in nodes:
                api.patch(f"/v1/nodes/{body['name']}", {"bmc": body["bmc"]})
            else:
                api.post("/v1/nodes", body)
    console.print(f"{count} VMs enrolled (BMCs on 127.0.0.1:{daemon['port']}); consoles in "
                  f"{state_dir}/vm-NN.console.log")
    console.print("next: metalfleet node manage vm-01 --wait; metalfleet node inspect vm-01 "
                  "--wait; metalfleet node provide vm-01 --wait; "
                  "metalfleet node deploy vm-01 --image vm-tiny --wait")


FAULT_KINDS = "gpu-xid, gpu-ecc, gpu-missing, fan, ib-link-down, disk-smart, pcie-width, edac"
FAULT_COLUMNS = ["node", "kind", "component", "injected_at"]


@app.command()
def fault(
    node: Annotated[str, typer.Argument(help="a lab node, e.g. lab-gpu-01")],
    kind: Annotated[str | None, typer.Argument(help=FAULT_KINDS)] = None,
    component: Annotated[str | None, typer.Option(
        help="GPU3 (or 3), FAN2, mlx5_1, nvme0n1, mc0; default: the first one")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="repair every fault on NODE")] = False,
    output: Output = Format.TABLE,
) -> None:
    """Make a lab node's hardware and BMC show a fault (needs `metalfleet up --lab N`)."""
    if clear == (kind is not None):
        err_console.print(f"[red]error:[/] give a KIND ({FAULT_KINDS}) or --clear")
        raise typer.Exit(2)
    api = client()
    with api_errors():
        if clear:
            cleared = api.delete(f"/v1/lab/faults/{node}")["items"]
            if output is Format.TABLE:
                console.print(f"{node}: cleared " + (", ".join(
                    f"{f['kind']} on {f['component']}" for f in cleared) or "nothing (no faults)"))
            else:
                render(cleared, output)
            return
        body: dict[str, Any] = {"node": node, "kind": kind}
        if component is not None:
            body["component"] = component
        injected = api.post("/v1/lab/faults", body)
    if output is Format.TABLE:
        console.print(f"{node}: {injected['kind']} injected on {injected['component']}")
    else:
        render(injected, output)


@app.command()
def faults(
    node: Annotated[str | None, typer.Option(help="only this node")] = None,
    output: Output = Format.TABLE,
) -> None:
    """The faults active in the lab."""
    with api_errors():
        items = client().get("/v1/lab/faults", node=node)["items"]
    render(items, output, FAULT_COLUMNS)
