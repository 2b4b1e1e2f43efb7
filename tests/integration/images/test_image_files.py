"""Images from local files: upload with format detection, verify, qcow2 -> raw conversion."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.runtime import AppContext, LabAllowance

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

MIB = 1 << 20


def _raw_content() -> bytes:
    # Known content with data at both ends and a hole in the middle.
    head = bytes(range(256)) * 4096  # 1 MiB
    return head + b"\0" * MIB + b"metalfleet-tail" * 100 + b"\0" * (MIB - 1500)


@pytest.fixture
def raw_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(_raw_content())
    return path


@pytest.fixture
def qcow2_file(tmp_path: Path, raw_file: Path) -> Path:
    path = tmp_path / "disk.qcow2"
    size = raw_file.stat().st_size
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)],
                   check=True)
    # Write the raw content into the existing qcow2 (-n: do not create the target).
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(raw_file),
                    str(path)], check=True)
    return path


def _upload(client: TestClient, name: str, path: Path, os_: str = "") -> httpx.Response:
    response: httpx.Response = client.post(
        "/v1/images/upload", params={"name": name, "os": os_}, content=path.read_bytes())
    return response


def test_upload_raw_detects_format_and_serves_it(client: TestClient, raw_file: Path) -> None:
    response = client.post("/v1/images/upload", params={"name": "tiny", "os": "debian-12"},
                           content=raw_file.read_bytes())
    assert response.status_code == 201, response.text
    body = response.json()
    content = raw_file.read_bytes()
    assert body["disk_format"] == "raw"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["size_bytes"] == len(content)
    assert body["os"] == "debian-12"
    assert body["location"] == "http://testserver/images/tiny.raw"
    assert response.headers["location"] == "/v1/images/tiny"
    assert client.get("/images/tiny.raw").content == content
    verified = client.post("/v1/images/tiny/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True
    again = client.post("/v1/images/upload", params={"name": "tiny"}, content=b"x" * 512)
    assert again.status_code == 409


def test_qcow2_upload_convert_and_raw_stream(
    client: TestClient, qcow2_file: Path, raw_file: Path
) -> None:
    response = client.post("/v1/images/upload", params={"name": "q"},
                           content=qcow2_file.read_bytes())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["disk_format"] == "qcow2"
    assert body["location"] == "http://testserver/images/q.qcow2"
    assert body["sha256"] == hashlib.sha256(qcow2_file.read_bytes()).hexdigest()

    missing = client.get("/v1/images/q/raw")
    assert missing.status_code == 404
    assert "convert" in missing.json()["detail"]

    converted = client.post("/v1/images/q/convert")
    assert converted.status_code == 200, converted.text
    record = converted.json()
    content = raw_file.read_bytes()
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert record["size_bytes"] == len(content)
    assert record["source_sha256"] == body["sha256"]
    assert record["url"] == "http://testserver/v1/images/q/raw"

    streamed = client.get("/v1/images/q/raw", headers={"Authorization": ""})
    assert streamed.status_code == 200
    assert streamed.content == content
    ranged = client.get("/v1/images/q/raw", headers={"Range": "bytes=0-255"})
    assert ranged.status_code == 206
    assert ranged.content == content[:256]
    # Cached: a second conversion answers the same record.
    assert client.post("/v1/images/q/convert").json()["sha256"] == record["sha256"]
    # The record itself is untouched.
    assert client.get("/v1/images/q").json()["disk_format"] == "qcow2"


def test_other_formats_and_bad_requests_are_refused(
    client: TestClient, context: AppContext, tmp_path: Path, raw_file: Path
) -> None:
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "1M"], check=True)
    response = _upload(client, "vm", vmdk)
    assert response.status_code == 422
    assert "vmdk" in response.json()["detail"]
    assert client.get("/v1/images/vm").status_code == 404
    assert client.post("/v1/images/upload", params={"name": "empty"}, content=b"")\
        .status_code == 422
    assert client.post("/v1/images/upload", params={"name": "Bad Name"}, content=b"x")\
        .status_code == 422
    context.settings.max_upload_bytes = 1000
    too_big = _upload(client, "big", raw_file)
    assert too_big.status_code == 413
    assert not list((context.settings.data_dir / "images").glob("*big*"))
    context.settings.max_upload_bytes = 64 << 30
    assert _upload(client, "plain", raw_file).status_code == 201
    refused = client.post("/v1/images/plain/convert")
    assert refused.status_code == 422
    assert "not qcow2" in refused.json()["detail"]


def test_verify_reports_mismatches_without_changing_the_record(
    client: TestClient, raw_file: Path, lab_enabled: LabAllowance
) -> None:
    """file:// locations are a lab shortcut: this runs as a lab process, the file in its
    folder (tests/security/test_lab_shortcuts.py checks they are refused elsewhere)."""
    raw_file = raw_file.rename(lab_enabled.root / raw_file.name)
    content = raw_file.read_bytes()
    good = hashlib.sha256(content).hexdigest()
    wrong = "0" * 64
    created = client.post("/v1/images", json={
        "name": "byurl", "location": raw_file.as_uri(), "sha256": wrong,
        "size_bytes": len(content) + 1, "disk_format": "qcow2"})
    assert created.status_code == 201, created.text
    response = client.post("/v1/images/byurl/verify")
    assert response.status_code == 422
    problem = response.json()
    # The computed digest is never echoed (issue 11): only that it differs.
    assert problem["mismatches"]["sha256"] == {"registered": wrong, "actual": "mismatch"}
    assert problem["mismatches"]["size_bytes"] == {"registered": len(content) + 1,
                                                   "actual": len(content)}
    assert problem["mismatches"]["disk_format"] == {"registered": "qcow2", "actual": "raw"}
    assert wrong in problem["detail"] and good not in response.text
    record = client.get("/v1/images/byurl").json()
    assert record["sha256"] == wrong and record["disk_format"] == "qcow2"
    # A qcow2 registered by URL elsewhere cannot be converted here.
    refused = client.post("/v1/images/byurl/convert")
    assert refused.status_code == 422
    assert "upload" in refused.json()["detail"]
    fixed = client.patch("/v1/images/byurl", json={"sha256": good, "size_bytes": len(content)})
    assert fixed.status_code == 200
    gone = (lab_enabled.root / "nonexistent" / "x.raw").as_uri()
    assert client.post("/v1/images", json={"name": "gone", "location": gone}).status_code == 201
    unreachable = client.post("/v1/images/gone/verify")
    assert unreachable.status_code == 422
    assert "cannot download" in unreachable.json()["detail"]


def test_conductor_hands_the_agent_the_converted_raw_stream(
    live_server: str, admin_token: str, qcow2_file: Path, raw_file: Path,
    tmp_path: Path, context: AppContext,
) -> None:
    """Over a real socket: upload qcow2, the deploy is refused until converted, then the agent
    writes the raw stream and its checksum verifies. The conversion is recorded in the
    image's row, which is what the conductor reads."""
    from metalfleet.agent.disk import write_image
    from metalfleet.conductor.context import image_ref
    from metalfleet.core.errors import DriverError
    from metalfleet.db import models as m

    def row() -> m.Image:
        with context.db.session() as session:
            image = session.scalars(select(m.Image).where(m.Image.name == "q")).one()
            session.expunge(image)
            return image

    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=live_server, headers=headers, timeout=30) as http:
        uploaded = http.post("/v1/images/upload", params={"name": "q"},
                             content=qcow2_file.read_bytes())
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["location"] == f"{live_server}/images/q.qcow2"
        with pytest.raises(DriverError, match="POST /v1/images/q/convert"):
            image_ref(row())
        assert http.post("/v1/images/q/convert").status_code == 200
        ref = image_ref(row())
    assert ref.url == f"{live_server}/v1/images/q/raw" and ref.disk_format == "raw"
    assert ref.sha256 is not None
    target = tmp_path / "disk"
    target.write_bytes(b"\xff" * (4 * MIB))
    write_image(ref.url, target, ref.sha256, ref.size_bytes, disk_format=ref.disk_format)
    content = raw_file.read_bytes()
    assert target.read_bytes()[: len(content)] == content


def test_cli_register_verify_convert(
    live_server: str, admin_token: str, qcow2_file: Path, raw_file: Path
) -> None:
    from typer.testing import CliRunner

    from metalfleet.cli.main import app

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", admin_token, *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert '"disk_format": "qcow2"' in run("image", "register", "q", "--file", str(qcow2_file),
                                           "--os", "debian-12", "-o", "json")
    assert '"ok": true' in run("image", "verify", "q", "-o", "json")
    digest = hashlib.sha256(raw_file.read_bytes()).hexdigest()
    assert digest in run("image", "convert", "q", "-o", "json")
    with httpx.Client(base_url=live_server) as http:
        assert http.get("/v1/images/q/raw").content == raw_file.read_bytes()
