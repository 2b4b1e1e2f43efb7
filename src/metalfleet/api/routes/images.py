"""Image routes beyond the generic CRUD: upload a file, verify, convert qcow2 to raw, serve raw.

Included before the generic /v1/images router so that these paths win.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from metalfleet.api.deps import READ, WRITE, Context, DbSession, require
from metalfleet.core.errors import ConflictError, NotFoundError, ValidationError
from metalfleet.db import models as m
from metalfleet.inventory import images, resources
from metalfleet.inventory import schemas as s
from metalfleet.inventory.schemas import Name

router = APIRouter(prefix="/v1/images", tags=["images"])
KIND = resources.KINDS["images"]
writer = Depends(require(WRITE, "changing images"))
reader = Depends(require(READ, "reading images"))


@router.post(
    "/upload", response_model=s.ImageOut, status_code=201, dependencies=[writer],
    summary="Register an image from a file sent as the request body",
    description="The body is the image file (any content type), streamed to "
    "<data-dir>/images/<name>.<format>; at most "
    f"{images.MAX_UPLOAD_BYTES} bytes (64 GiB; larger is refused with 413). The server "
    "computes sha256 and size, detects raw or qcow2 with `qemu-img info` (others: 422) and "
    "sets the location to this API's /images/<file> URL.",
)
async def upload(
    request: Request, context: Context, session: DbSession, response: Response,
    name: Annotated[Name, Query()], os: Annotated[str, Query()] = "",
) -> BaseModel:
    if session.query(m.Image.id).filter(m.Image.name == name).first() is not None:
        raise ConflictError(
            f"an image named {name!r} already exists; pick another name or delete it first"
        )
    limit = context.settings.max_upload_bytes
    path, facts = await images.store_upload(
        context.settings.data_dir, name, request.stream(), max_bytes=limit
    )
    location = f"{str(request.base_url).rstrip('/')}/images/{path.name}"
    body = s.ImageIn(name=name, os=os, disk_format=s.DiskFormat(facts.disk_format),
                     location=location, sha256=facts.sha256, size_bytes=facts.size_bytes)
    obj = resources.create(session, KIND, body)
    session.commit()  # visible before the answer: the client may convert or deploy at once
    response.headers["Location"] = f"/v1/images/{obj.name}"
    return resources.to_out(KIND, obj)


def _registered(image: Any) -> dict[str, Any]:
    return {"sha256": image.sha256, "size_bytes": image.size_bytes,
            "disk_format": image.disk_format}


@router.post("/{name}/verify", dependencies=[writer],
             summary="Download the image and check it against its record (unchanged)",
             description="Operators and admins only. Reads only the file the record names "
             "(the images folder, an http(s) URL, or a lab file in a --lab process), at most "
             "max_upload_bytes (413 beyond); a differing sha256 is reported as a mismatch "
             "without the computed digest.")
def verify(name: str, request: Request, context: Context, session: DbSession) -> dict[str, Any]:
    image = resources.get(session, KIND, name)
    registered = _registered(image)
    location = image.location
    lab_root = context.lab.root if context.lab is not None else None
    with images.fetched(context.settings.data_dir, location, str(request.base_url),
                        lab_root=lab_root, max_bytes=context.settings.max_upload_bytes) as path:
        facts = images.facts(path)
    found = images.mismatches(registered, facts)
    if found:
        shown = images.public_mismatches(found)
        raise ValidationError(
            f"image {name!r} does not match its record: "
            + "; ".join(f"{key} registered {v['registered']}, actual {v['actual']}"
                        for key, v in shown.items()),
            mismatches=shown, registered=registered,
        )
    actual = {"sha256": facts.sha256, "size_bytes": facts.size_bytes,
              "disk_format": facts.disk_format}
    return {"name": name, "ok": True, "location": location, **actual}


@router.post("/{name}/convert", dependencies=[writer],
             summary="Convert a qcow2 image to raw for deploys (once; cached)")
async def convert(
    name: str, request: Request, context: Context, session: DbSession
) -> dict[str, Any]:
    image = resources.get(session, KIND, name)
    if image.disk_format != "qcow2":
        raise ValidationError(f"image {name!r} is {image.disk_format}, not qcow2: nothing "
                              "to convert; the agent writes it as it is")
    data_dir = context.settings.data_dir
    source = images.local_file(data_dir, image.location)
    if source is None:
        raise ValidationError(
            f"image {name!r} is not stored on this server ({image.location}); register it "
            "by upload (POST /v1/images/upload) so that it can be converted"
        )
    registered = _registered(image)
    raw_file = images.converted_file(data_dir, name)
    if (image.raw_sha256 and image.sha256 and image.raw_source_sha256 == image.sha256
            and raw_file.is_file()):
        return _conversion_out(request, image)  # converted from this very file already

    def work() -> tuple[str, images.ImageFacts]:
        facts = images.facts(source)
        found = images.mismatches(registered, facts)
        if found:
            raise ValidationError(
                f"image {name!r} no longer matches its record; not converting",
                mismatches=found,
            )
        return facts.sha256, images.convert(data_dir, name, source)

    source_sha256, raw = await asyncio.to_thread(work)
    image.raw_sha256, image.raw_size_bytes = raw.sha256, raw.size_bytes
    image.raw_source_sha256 = source_sha256
    session.commit()  # visible before the answer: the client may deploy at once
    return _conversion_out(request, image)


def _conversion_out(request: Request, image: m.Image) -> dict[str, Any]:
    return {"name": image.name, "file": f"{image.name}{images.CONVERTED_SUFFIX}",
            "sha256": image.raw_sha256, "size_bytes": image.raw_size_bytes,
            "source_sha256": image.raw_source_sha256,
            "url": f"{str(request.base_url).rstrip('/')}/v1/images/{image.name}/raw"}


@router.get("/{name}/raw", summary="The raw conversion of a qcow2 image (no token, as /images)")
def raw(name: str, context: Context, session: DbSession) -> FileResponse:
    # Nodes fetch images without a token, like the /images mount; only converted files exist.
    image = resources.get(session, KIND, name)
    path = images.converted_file(context.settings.data_dir, name)
    if image.raw_sha256 is None or not path.is_file():
        raise NotFoundError(
            f"image {name!r} has no raw conversion; POST /v1/images/{name}/convert first"
        )
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{name}.raw")
