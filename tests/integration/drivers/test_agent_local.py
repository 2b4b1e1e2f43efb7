"""The lab's in-process agent driver against synthetic roots and a real local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from metalfleet.core.errors import DriverError
from metalfleet.drivers.agent_local import (
    AgentLocalBurnIn,
    AgentLocalClean,
    AgentLocalDeploy,
    AgentLocalInspect,
)
from metalfleet.drivers.base import BmcCredentials, ImageRef, NodeContext
from metalfleet.lab.synthetic_hardware import DiskSpec, build_root, gpu_node_spec

MIB = 1024 * 1024


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the agent hung up: expected
            super().handle_error(request, client_address)


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, directory) of a real HTTP server on 127.0.0.1."""
    directory = tmp_path / "images"
    directory.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", directory
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _node(root: Path, image: ImageRef | None = None, **info: Any) -> NodeContext:
    events: list[tuple[int, str]] = []
    node = NodeContext(
        name="gpu-001",
        uuid="00000000-0000-0000-0000-000000000001",
        bmc=BmcCredentials(driver="lab", address="lab://gpu-001"),
        driver_info={"hardware_root": str(root), **info},
        image=image,
        progress=lambda percent, step: events.append((percent, step)),
    )
    node.events = events  # type: ignore[attr-defined]
    return node


def _events(node: NodeContext) -> list[tuple[int, str]]:
    events: list[tuple[int, str]] = node.events  # type: ignore[attr-defined]
    return events


def _publish(directory: Path, base: str, name: str, data: bytes, **kw: Any) -> ImageRef:
    (directory / name).write_bytes(data)
    return ImageRef(
        name=name,
        url=f"{base}/{name}",
        sha256=kw.pop("sha256", hashlib.sha256(data).hexdigest()),
        size_bytes=kw.pop("size_bytes", len(data)),
        **kw,
    )


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.fixture
def gpu_root(tmp_path: Path) -> Path:
    return build_root(tmp_path / "gpu-001", gpu_node_spec(1))


def test_inspect_matches_the_spec(gpu_root: Path) -> None:
    spec = gpu_node_spec(1)
    node = _node(gpu_root)
    inv = AgentLocalInspect(gpu_root.parent).inspect(node)

    assert (inv["cpu"]["sockets"], inv["cpu"]["cores"], inv["cpu"]["threads"]) == (
        spec.sockets,
        spec.cores,
        spec.threads,
    )
    assert inv["cpu"]["model"] == spec.cpu_model
    assert inv["memory"]["total_mib"] == spec.memory_gib * 1024
    assert len(inv["gpus"]) == 8
    assert {(g["name"], g["memory_mib"], g["nvlink"]) for g in inv["gpus"]} == {
        ("NVIDIA H100 80GB HBM3", 81559, True)
    }
    assert len(inv["infiniband"]) == 8
    assert {(p["state"], p["rate_gbps"]) for p in inv["infiniband"]} == {("ACTIVE", 400)}
    assert [d["size_bytes"] for d in inv["disks"]] == [spec.disk.size_bytes]
    assert [d["serial"] for d in inv["disks"]] == [spec.disk.serial]
    assert [n["mac"] for n in inv["nics"]] == [nic.mac for nic in spec.nics]
    assert inv["dmi"]["product_serial"] == spec.dmi.product_serial
    assert _events(node)[-1][0] == 100


def test_deploy_over_http_then_clean(gpu_root: Path, image_server: tuple[str, Path]) -> None:
    base, directory = image_server
    data = os.urandom(5 * MIB + 17) + bytes(16 * MIB) + os.urandom(MIB)
    node = _node(gpu_root, _publish(directory, base, "ubuntu-22.04.raw", data))
    disk = gpu_root / "dev/nvme0n1"

    AgentLocalDeploy(gpu_root.parent).deploy(node)

    assert _read(disk, 0, len(data)) == data
    assert _read(disk, len(data), MIB) == bytes(MIB)
    assert disk.stat().st_size == 3_840_755_982_336
    assert disk.stat().st_blocks * 512 < 12 * MIB  # the 16 MiB zero run stayed sparse
    percents = [p for p, _ in _events(node)]
    assert percents == sorted(percents) and percents[-1] == 100
    AgentLocalDeploy(gpu_root.parent).tear_down(node)  # no-op in-band
    assert _read(disk, 0, MIB) == data[:MIB]

    result = AgentLocalClean(gpu_root.parent).clean(node)
    assert (result["mode"], result["verified"]) == ("metadata", True)
    assert _read(disk, 0, 4 * MIB) == bytes(4 * MIB)
    assert _read(disk, 4 * MIB, MIB) == data[4 * MIB : 5 * MIB]  # metadata only

    node.driver_info["clean_mode"] = "full"
    result = AgentLocalClean(gpu_root.parent).clean(node)
    assert (result["mode"], result["method"]) == ("full", "punch-hole")
    assert _read(disk, 0, len(data)).count(0) == len(data)
    assert disk.stat().st_blocks == 0


def test_checksum_mismatch_leaves_the_first_mib_zeroed(
    gpu_root: Path, image_server: tuple[str, Path]
) -> None:
    base, directory = image_server
    good = os.urandom(3 * MIB)
    good_image = _publish(directory, base, "good.raw", good)
    AgentLocalDeploy(gpu_root.parent).deploy(_node(gpu_root, good_image))
    disk = gpu_root / "dev/nvme0n1"
    assert _read(disk, 0, MIB) == good[:MIB]

    bad = os.urandom(3 * MIB)
    registered = hashlib.sha256(good).hexdigest()  # the catalog has the wrong checksum
    image = _publish(directory, base, "bad.raw", bad, sha256=registered)
    with pytest.raises(DriverError) as caught:
        AgentLocalDeploy(gpu_root.parent).deploy(_node(gpu_root, image))
    assert caught.value.detail == (
        f"image checksum mismatch: expected {registered}, "
        f"got {hashlib.sha256(bad).hexdigest()}; re-register the image or fix the source"
    )
    assert _read(disk, 0, MIB) == bytes(MIB)


def test_image_larger_than_disk_is_refused(tmp_path: Path, image_server: tuple[str, Path]) -> None:
    base, directory = image_server
    spec = replace(gpu_node_spec(2), disk=DiskSpec(size_bytes=8 * MIB))
    root = build_root(tmp_path / "small", spec)
    data = bytes(8 * MIB + 512)

    image = _publish(directory, base, "big.raw", data)
    with pytest.raises(DriverError, match="image is too large for the disk: registered size"):
        AgentLocalDeploy(tmp_path).deploy(_node(root, image))

    unsized = replace(image, size_bytes=None)
    with pytest.raises(DriverError, match="too large for the disk: served size 8389120 bytes"):
        AgentLocalDeploy(tmp_path).deploy(_node(root, unsized))


def test_deploy_errors(gpu_root: Path, image_server: tuple[str, Path]) -> None:
    deployer = AgentLocalDeploy(gpu_root.parent)
    base, directory = image_server
    with pytest.raises(DriverError, match="no image to deploy"):
        deployer.deploy(_node(gpu_root))
    image = _publish(directory, base, "img.raw", b"x" * 4096)
    with pytest.raises(DriverError, match="has no sha256"):
        deployer.deploy(_node(gpu_root, replace(image, sha256=None)))
    with pytest.raises(DriverError, match="qcow2 support lands with network boot"):
        deployer.deploy(_node(gpu_root, replace(image, disk_format="qcow2")))
    with pytest.raises(DriverError, match="HTTP 404"):
        deployer.deploy(_node(gpu_root, replace(image, url=f"{base}/missing.raw")))
    with pytest.raises(DriverError, match=r"disk .* does not exist"):
        deployer.deploy(_node(gpu_root, image, disk="dev/sda"))


def test_burn_in_and_driver_info_errors(gpu_root: Path, tmp_path: Path) -> None:
    node = _node(gpu_root, burn_in_seconds=0.3)
    result = AgentLocalBurnIn(tmp_path).burn_in(node)
    assert result["passed"] is True and result["disk"]["bytes"] > 0
    assert _events(node)[-1] == (100, "burn-in passed")

    with pytest.raises(DriverError, match="clean_mode 'secure'"):
        AgentLocalClean(tmp_path).clean(_node(gpu_root, clean_mode="secure"))
    bare = _node(gpu_root)
    bare.driver_info.pop("hardware_root")
    with pytest.raises(DriverError, match=r"driver_info.hardware_root is required"):
        AgentLocalInspect(tmp_path).inspect(bare)
    with pytest.raises(DriverError, match="does not exist"):
        AgentLocalInspect(tmp_path).inspect(_node(tmp_path / "nowhere"))
