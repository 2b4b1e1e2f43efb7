"""cloud-init NoCloud (nocloud-net) seed: what a freshly deployed node fetches on first boot.

The seed URL names the node's per-deploy seed secret (boot/nocloud_seeds.py), handed to the
node's boot path when its deploy started; nodes find it in their SMBIOS serial
(``ds=nocloud-net;s=URL``) or on the kernel command line. A MAC, a wrong or an expired secret
all get the same 404, with no event row: an anonymous prober learns nothing and writes
nothing. The first fetch of meta-data is the node's first-boot callback and is recorded once.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from metalfleet.api.deps import DbSession
from metalfleet.boot import cloudinit, nocloud_seeds
from metalfleet.core.errors import NotFoundError
from metalfleet.inventory import events

router = APIRouter(prefix="/v1/nocloud", tags=["boot"])
RENDERERS = {
    "meta-data": cloudinit.meta_data,
    "user-data": cloudinit.user_data,
    "network-config": cloudinit.network_config,
}
NO_SEED = "no NoCloud seed here"  # the same for every miss: it says nothing about nodes


@router.get("/{secret}/{item}", response_class=PlainTextResponse)
def seed(session: DbSession, secret: str, item: str) -> str:
    render = RENDERERS.get(item)
    found = nocloud_seeds.find(session, secret) if render or item == "vendor-data" else None
    if found is None:
        raise NotFoundError(NO_SEED)
    node, current = found
    if render is None:
        return ""  # vendor-data: none
    if item == "meta-data" and nocloud_seeds.first_boot(current):
        events.record(session, node=node, kind="first-boot", actor="cloud-init",
                      message=f"first boot: {node.name} fetched its meta-data while {node.state}")
    return render(node)
