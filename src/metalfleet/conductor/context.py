"""Build the driver's view of a node (NodeContext) from its database row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.db import models as m
from metalfleet.drivers.base import BmcCredentials, ImageRef, NodeContext
from metalfleet.inventory.images import CONVERTED_SUFFIX
from metalfleet.secrets import CredentialCipher


def image_ref(image: m.Image) -> ImageRef:
    """What the agent writes. The agent writes raw only, so a qcow2 image is handed over as its
    raw conversion (POST /v1/images/NAME/convert); without one this raises DriverError."""
    if image.disk_format != "qcow2":
        return ImageRef(
            name=image.name,
            url=image.location,
            sha256=image.sha256,
            size_bytes=image.size_bytes,
            disk_format=image.disk_format,
        )
    if image.raw_sha256 is None or (image.sha256 and image.raw_source_sha256 != image.sha256):
        raise DriverError(
            f"image {image.name} is qcow2 and the deploy agent writes raw images only: "
            f"convert the image first: POST /v1/images/{image.name}/convert"
        )
    base = image.location.rsplit("/", 1)[0]
    if image.location.startswith("file://"):
        url = f"{base}/{image.name}{CONVERTED_SUFFIX}"
    else:  # the API that serves <root>/images/<file> serves <root>/v1/images/<name>/raw
        root = base[: -len("/images")] if base.endswith("/images") else base
        url = f"{root}/v1/images/{image.name}/raw"
    return ImageRef(name=image.name, url=url, sha256=image.raw_sha256,
                    size_bytes=image.raw_size_bytes, disk_format="raw")


@dataclass(frozen=True)
class UnusableImageRef(ImageRef):
    """An image the agent cannot write: using its url or checksum raises the reason, so the
    deploy fails with it (inside the flow) while power and other work on the node go on."""

    problem: str = ""

    def __getattribute__(self, attr: str) -> Any:
        if attr in ("url", "sha256"):
            raise DriverError(object.__getattribute__(self, "problem"))
        return object.__getattribute__(self, attr)

    def __repr__(self) -> str:
        return f"UnusableImageRef(name={self.name!r}, problem={self.problem!r})"


def _image(image: m.Image | None) -> ImageRef | None:
    if image is None:
        return None
    try:
        return image_ref(image)
    except DriverError as exc:
        return UnusableImageRef(name=image.name, url="", sha256=None, size_bytes=None,
                                disk_format=image.disk_format, problem=exc.detail)


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
        image=_image(node.image),
    )
    if progress is not None:
        ctx.progress = progress
    return ctx
