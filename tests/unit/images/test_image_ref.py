"""The conductor hands the agent a qcow2 image as its raw conversion, or fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from metalfleet.conductor.context import UnusableImageRef, _image, image_ref
from metalfleet.core.errors import DriverError
from metalfleet.db import models as m

SHA_Q = "a" * 64
SHA_RAW = "b" * 64


def _image_row(location: str, disk_format: str = "qcow2", sha256: str | None = SHA_Q) -> m.Image:
    return m.Image(name="q", os="", location=location, disk_format=disk_format, sha256=sha256,
                   size_bytes=100)


def test_raw_images_pass_through() -> None:
    ref = image_ref(_image_row("http://api/images/q.raw", "raw"))
    assert ref.url == "http://api/images/q.raw" and ref.disk_format == "raw"
    assert ref.sha256 == SHA_Q


def test_unconverted_qcow2_fails_with_the_fix(tmp_path: Path) -> None:
    row = _image_row((tmp_path / "q.qcow2").as_uri())
    with pytest.raises(DriverError, match=r"convert the image first: POST /v1/images/q/convert"):
        image_ref(row)
    lazy = _image(row)
    assert isinstance(lazy, UnusableImageRef)
    assert lazy.name == "q"  # usable for progress messages; url/sha256 raise inside the flow
    with pytest.raises(DriverError, match="convert the image first"):
        _ = lazy.url
    with pytest.raises(DriverError, match="convert the image first"):
        _ = lazy.sha256


def _converted(row: m.Image, source_sha256: str) -> m.Image:
    row.raw_sha256, row.raw_size_bytes, row.raw_source_sha256 = SHA_RAW, 10, source_sha256
    return row


def test_converted_qcow2_is_handed_over_as_raw(tmp_path: Path) -> None:
    ref = image_ref(_converted(_image_row((tmp_path / "q.qcow2").as_uri()), SHA_Q))
    assert ref.disk_format == "raw"
    assert ref.url == (tmp_path / "q.converted.raw").as_uri()
    assert ref.sha256 == SHA_RAW and ref.size_bytes == 10


def test_http_location_uses_the_raw_endpoint() -> None:
    ref = image_ref(_converted(_image_row("http://10.0.0.1:8080/images/q.qcow2"), SHA_Q))
    assert ref.url == "http://10.0.0.1:8080/v1/images/q/raw"
    assert ref.sha256 == SHA_RAW and ref.disk_format == "raw"


def test_a_stale_conversion_is_not_used(tmp_path: Path) -> None:
    row = _converted(_image_row((tmp_path / "q.qcow2").as_uri()), "c" * 64)  # an older file
    with pytest.raises(DriverError, match="convert the image first"):
        image_ref(row)
