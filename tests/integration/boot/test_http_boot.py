"""UEFI HTTP boot: the API serves the iPXE binary that the DHCP answer points HTTP clients to
(boot/dnsmasq.py: http_boot_url), with Range requests as firmware uses them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from metalfleet.boot.dnsmasq import IPXE_DIR, http_boot_url


def test_ipxe_efi_is_served_where_dhcp_points(client: TestClient) -> None:
    binary = IPXE_DIR / "ipxe.efi"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: install Debian's ipxe package")
    url = http_boot_url("http://testserver/")
    assert url == "http://testserver/v1/boot/ipxe.efi"
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == binary.read_bytes()
    assert response.content[:2] == b"MZ"  # a PE/COFF executable, as UEFI loads
    head = client.head(url)  # how UEFI firmware learns the size before downloading
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == binary.stat().st_size
    part = client.get(url, headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and part.content == binary.read_bytes()[:1024]
