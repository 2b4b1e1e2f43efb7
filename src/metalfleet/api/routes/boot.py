"""Network boot: the iPXE script a node asks for by MAC (no token: nodes have none)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from sqlalchemy import select

from metalfleet.api.deps import DbSession
from metalfleet.boot.dnsmasq import IPXE_DIR
from metalfleet.boot.ipxe import node_script
from metalfleet.core.errors import NotFoundError
from metalfleet.db import models as m
from metalfleet.inventory import events
from metalfleet.inventory.discovery import normal_macs

router = APIRouter(prefix="/v1/boot", tags=["boot"])


@router.get("/ipxe", response_class=PlainTextResponse)
def ipxe_script(session: DbSession, request: Request,
                mac: str = Query(description="the booting NIC's MAC")) -> str:
    mac = normal_macs([mac])[0]  # it goes into the script: nothing but a MAC
    node = session.scalar(select(m.Node).join(m.Port).where(m.Port.mac == mac))
    if node is not None:
        events.record(session, node=node, kind="boot", actor="ipxe",
                      message=f"network boot from {mac} while {node.state}")
    return node_script(base_url=str(request.base_url), node=node.name if node else None,
                       state=node.state if node else None, mac=mac)


# HEAD too: UEFI firmware asks for the size of the file with HEAD before it downloads it.
@router.api_route("/ipxe.efi", methods=["GET", "HEAD"], response_class=FileResponse)
def ipxe_efi() -> FileResponse:
    """iPXE for UEFI HTTP boot clients (the DHCP answer to vendor class HTTPClient points
    here); Debian's build, which chains to boot.ipxe like the TFTP-loaded one."""
    binary = IPXE_DIR / "ipxe.efi"
    if not binary.is_file():
        raise NotFoundError(f"{binary} is missing on the API host; install Debian's ipxe "
                            "package (apt-get install ipxe)")
    return FileResponse(binary, media_type="application/efi")
