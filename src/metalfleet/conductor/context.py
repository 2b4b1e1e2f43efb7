"""Build the driver's view of a node (NodeContext) from its database row."""

from __future__ import annotations

from collections.abc import Callable

from metalfleet.db import models as m
from metalfleet.drivers.base import BmcCredentials, ImageRef, NodeContext
from metalfleet.secrets import CredentialCipher


def image_ref(image: m.Image) -> ImageRef:
    return ImageRef(
        name=image.name,
        url=image.location,
        sha256=image.sha256,
        size_bytes=image.size_bytes,
        disk_format=image.disk_format,
    )


def node_context(
    node: m.Node, cipher: CredentialCipher, progress: Callable[[int, str], None] | None = None
) -> NodeContext:
    password = (
        cipher.decrypt(node.bmc_password_encrypted) if node.bmc_password_encrypted else None
    )
    ctx = NodeContext(
        name=node.name,
        uuid=node.id,
        bmc=BmcCredentials(
            driver=node.bmc_driver,
            address=node.bmc_address,
            username=node.bmc_username,
            password=password,
            verify_tls=node.bmc_verify_tls,
        ),
        driver_info=dict(node.driver_info or {}),
        inventory=dict(node.inventory or {}),
        macs=[port.mac for port in node.ports],
        image=image_ref(node.image) if node.image is not None else None,
    )
    if progress is not None:
        ctx.progress = progress
    return ctx
