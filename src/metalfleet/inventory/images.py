"""Image files on the API server: upload with format detection, verification, qcow2 -> raw.

Uploaded images live in ``<data-dir>/images/<name>.<format>`` and are served by the API's
``/images`` mount. The deploy agent runs in a ramdisk without qemu-img, so a qcow2 image is
converted here once (``qemu-img convert -O raw``) into ``<name>.converted.raw`` beside the
original; the image's row records the raw file's sha256 and size and the qcow2 checksum it was
made from (``raw_*`` columns), and the conductor hands the agent that raw stream
(conductor/context.py), served at ``/v1/images/<name>/raw``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from metalfleet.core.errors import MetalfleetError, ValidationError

CHUNK = 1 << 20
# The largest image accepted by POST /v1/images/upload (bytes). Larger bodies are cut off with
# a 413 problem; register such images by URL instead.
MAX_UPLOAD_BYTES = 64 << 30
SUPPORTED_FORMATS = ("raw", "qcow2")
CONVERTED_SUFFIX = ".converted.raw"


class TooLargeError(MetalfleetError):
    status = 413
    title = "Image too large"


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    size_bytes: int
    disk_format: str


def images_dir(data_dir: Path) -> Path:
    path = data_dir / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def detect_format(path: Path) -> str:
    """The image's format by ``qemu-img info``; only raw and stand-alone qcow2 are accepted."""
    try:
        done = subprocess.run(
            ["qemu-img", "info", "--output=json", "--", str(path)],
            capture_output=True, text=True, timeout=120, check=False,
        )
    except FileNotFoundError as exc:
        raise MetalfleetError(
            "qemu-img is not installed on the API server; install qemu-utils"
        ) from exc
    if done.returncode != 0:
        raise ValidationError(f"qemu-img cannot read the image: {done.stderr.strip()[:300]}")
    info: dict[str, Any] = json.loads(done.stdout)
    fmt = str(info.get("format", ""))
    if fmt not in SUPPORTED_FORMATS:
        raise ValidationError(
            f"image format {fmt!r} is not supported: only raw and qcow2; convert it with "
            "`qemu-img convert -O qcow2` first", detected_format=fmt,
        )
    if info.get("backing-filename"):
        raise ValidationError(
            "qcow2 images with a backing file are not accepted; flatten it with "
            "`qemu-img convert -O qcow2 IMAGE FLAT.qcow2` first"
        )
    return fmt


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def image_path(data_dir: Path, name: str, disk_format: str) -> Path:
    return images_dir(data_dir) / f"{name}.{disk_format}"


async def store_upload(
    data_dir: Path, name: str, chunks: AsyncIterator[bytes], max_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[Path, ImageFacts]:
    """Stream a request body to the images directory, hashing on the way; detect its format."""
    directory = images_dir(data_dir)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".upload", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(
                        f"the upload exceeds {max_bytes} bytes; register the image by URL "
                        "(POST /v1/images with location) instead"
                    )
                digest.update(chunk)
                handle.write(chunk)
        if size == 0:
            raise ValidationError("the request body is empty; send the image file as the body")
        fmt = await asyncio.to_thread(detect_format, tmp)
        final = directory / f"{name}.{fmt}"
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final, ImageFacts(digest.hexdigest(), size, fmt)


def local_file(data_dir: Path, location: str, base_url: str | None = None) -> Path | None:
    """The file in our images directory that a location points at, if it does."""
    directory = images_dir(data_dir).resolve()
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "file":
        candidate = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme in ("http", "https"):
        if base_url is not None and not location.startswith(base_url.rstrip("/") + "/images/"):
            return None
        if not parsed.path.startswith("/images/"):
            return None
        candidate = directory / urllib.parse.unquote(parsed.path[len("/images/"):])
    else:
        return None
    resolved = candidate.resolve()
    if resolved.parent != directory or not resolved.is_file():
        return None
    return resolved


def facts(path: Path) -> ImageFacts:
    sha256, size = _hash_file(path)
    return ImageFacts(sha256, size, detect_format(path))


def _too_large(max_bytes: int) -> TooLargeError:
    return TooLargeError(f"the image is larger than {max_bytes} bytes, the most verify "
                         "hashes (max_upload_bytes); it was not verified")


def _verifiable_file(data_dir: Path, location: str, base_url: str | None,
                     lab_root: Path | None) -> Path | None:
    """The local file verify may read for ``location``, None for a remote URL, or refused.

    Verify only ever reads a file the image record legitimately names: ours (the images
    folder), or in a ``--lab`` process one inside the lab's data folder. Anything else that
    is a local path (a ``file://`` elsewhere, an /images/ URL escaping the folder) is refused
    before a byte is read, so its digest can never be computed, let alone shown."""
    local = local_file(data_dir, location, base_url)
    if local is not None:
        return local
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
        try:
            inside = lab_root is not None and path.resolve().is_relative_to(lab_root.resolve())
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise ValidationError(
                f"verify reads file:// locations only inside the lab's data folder of a --lab "
                f"process; {location!r} was not read")
        if not path.resolve().is_file():
            raise ValidationError(f"cannot download the image from {location}: no such file")
        return path.resolve()
    if parsed.scheme not in ("http", "https"):
        raise ValidationError(f"cannot fetch {location!r}: only http(s):// and file:// URLs")
    ours = base_url is not None and location.startswith(base_url.rstrip("/") + "/images/")
    if ours or ".." in urllib.parse.unquote(parsed.path).split("/"):
        raise ValidationError(f"{location!r} names no image file in the images folder; it "
                              "was not read")
    return None


@contextmanager
def fetched(data_dir: Path, location: str, base_url: str | None = None, *,
            lab_root: Path | None = None, max_bytes: int = MAX_UPLOAD_BYTES) -> Iterator[Path]:
    """The image at ``location`` as a local file, at most ``max_bytes`` (else 413): ours or
    the lab's directly, an http(s) one downloaded to a temp; anything else refused."""
    local = _verifiable_file(data_dir, location, base_url, lab_root)
    if local is not None:
        if local.stat().st_size > max_bytes:
            raise _too_large(max_bytes)
        yield local
        return
    fd, tmp_name = tempfile.mkstemp(prefix=".fetch.", dir=images_dir(data_dir))
    tmp = Path(tmp_name)
    try:
        try:
            with urllib.request.urlopen(location, timeout=60) as response, \
                    os.fdopen(fd, "wb") as handle:  # fmt: skip
                _copy(response, handle, max_bytes)
        except OSError as exc:
            raise ValidationError(f"cannot download the image from {location}: {exc}") from exc
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy(source: BinaryIO, target: BinaryIO, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    copied = 0
    while chunk := source.read(CHUNK):
        copied += len(chunk)
        if copied > max_bytes:
            raise _too_large(max_bytes)
        target.write(chunk)


def public_mismatches(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mismatches as verify shows them: a digest that differs is never echoed ("mismatch")."""
    return {key: ({"registered": v["registered"], "actual": "mismatch"} if key == "sha256"
                  else v) for key, v in found.items()}


def mismatches(registered: dict[str, Any], actual: ImageFacts) -> dict[str, dict[str, Any]]:
    """Fields whose registered value differs from the file's: {field: {registered, actual}}."""
    found: dict[str, dict[str, Any]] = {}
    for key in ("sha256", "size_bytes", "disk_format"):
        want = registered.get(key)
        got = getattr(actual, key)
        if want is not None and want != got:
            found[key] = {"registered": want, "actual": got}
    return found


def converted_file(data_dir: Path, name: str) -> Path:
    """Where the raw conversion of qcow2 image ``name`` lives (it may not exist yet)."""
    return images_dir(data_dir) / f"{name}{CONVERTED_SUFFIX}"


def convert(data_dir: Path, name: str, source: Path) -> ImageFacts:
    """Convert a qcow2 file to raw beside the images; the raw file's checksum and size."""
    directory = images_dir(data_dir)
    raw = converted_file(data_dir, name)
    tmp = directory / f".{name}.converting.raw"
    try:
        done = subprocess.run(
            ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", "--", str(source), str(tmp)],
            capture_output=True, text=True, timeout=3600, check=False,
        )
    except FileNotFoundError as exc:
        raise MetalfleetError(
            "qemu-img is not installed on the API server; install qemu-utils"
        ) from exc
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ValidationError(f"qemu-img convert failed: {done.stderr.strip()[:300]}")
    sha256, size = _hash_file(tmp)
    tmp.replace(raw)
    return ImageFacts(sha256, size, "raw")
