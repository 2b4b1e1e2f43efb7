"""Network boot: the iPXE script a node asks for by MAC (no token: nodes have none).

Anyone on the provisioning network can ask, so the answer names nothing (no node, tenant or
state) and writes no row per call: only the first fetch of a boot attempt (which hands out
the boot secret) and a second one (a security event) are recorded (inventory/agent_auth.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from sqlalchemy import select

from metalfleet.api.deps import Context
from metalfleet.boot.dnsmasq import IPXE_DIR
from metalfleet.boot.ipxe import node_script
from metalfleet.core.errors import NotFoundError
from metalfleet.db import models as m
from metalfleet.inventory import agent_auth
from metalfleet.inventory.agents import AGENT_STATES
from metalfleet.inventory.discovery import normal_macs

router = APIRouter(prefix="/v1/boot", tags=["boot"])


@router.get("/ipxe", response_class=PlainTextResponse)
def ipxe_script(context: Context, request: Request,
                mac: str = Query(description="the booting NIC's MAC", max_length=32)) -> str:
    mac = normal_macs([mac])[0]  # it goes into the script: nothing but a MAC
    address = request.client.host if request.client else None
    secret = None
    with context.db.session() as session:  # committed before the secret leaves
        node = session.scalar(select(m.Node).join(m.Port).where(m.Port.mac == mac))
        ramdisk = node is not None and node.state in AGENT_STATES
        if node is not None and ramdisk:
            secret = agent_auth.ipxe_secret(session, node, mac=mac, address=address)
    return node_script(base_url=str(request.base_url), known=node is not None,
                       ramdisk=ramdisk, secret=secret, mac=mac)


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
