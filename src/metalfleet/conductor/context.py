"""Build the driver's view of a node (NodeContext) from its database row."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.db import models as m
from metalfleet.drivers.base import BmcCredentials, ImageRef, NodeContext
from metalfleet.inventory.images import SIDECAR_SUFFIX
from metalfleet.secrets import CredentialCipher


def _fetch_conversion(location: str, name: str) -> dict[str, Any] | None:
    """The sidecar of the raw conversion beside the image's file (qcow2, see inventory/images)."""
    sidecar_name = f"{name}{SIDECAR_SUFFIX}"
    base = location.rsplit("/", 1)[0]
    try:
        if location.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(base).path)) / sidecar_name
            if not path.is_file():
                return None
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        if location.startswith(("http://", "https://")):
            with urllib.request.urlopen(f"{base}/{sidecar_name}", timeout=10) as response:
                fetched: dict[str, Any] = json.loads(response.read())
                return fetched
    except (OSError, ValueError):
        return None
    return None


def image_ref(
    image: m.Image,
    fetch_conversion: Callable[[str, str], dict[str, Any] | None] = _fetch_conversion,
) -> ImageRef:
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
    record = fetch_conversion(image.location, image.name)
    if record is None or (image.sha256 and record.get("source_sha256") != image.sha256):
        raise DriverError(
            f"image {image.name} is qcow2 and the deploy agent writes raw images only: "
            f"convert the image first: POST /v1/images/{image.name}/convert"
        )
    base = image.location.rsplit("/", 1)[0]
    if image.location.startswith("file://"):
        url = f"{base}/{record['file']}"
    else:
        root = base[: -len("/images")] if base.endswith("/images") else base
        url = f"{root}/v1/images/{image.name}/raw"
    return ImageRef(name=image.name, url=url, sha256=str(record["sha256"]),
                    size_bytes=int(record["size_bytes"]), disk_format="raw")


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
