"""`vm-tiny`: the small bootable OS image the VM lab deploys to prove a real disk boot.

A 64 MiB raw disk: an MBR with syslinux's boot code, one FAT16 partition holding syslinux,
the Debian kernel and a busybox initramfs. Its init brings up the network, reads the
NoCloud seed URL from the SMBIOS serial (``ds=nocloud-net;s=URL``, as cloud-init does),
fetches meta-data and user-data from metalfleet — that request is the first-boot callback —
and keeps running.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from metalfleet.boot.cpio import write_newc
from metalfleet.boot.ramdisk import (
    BOOT_PRELUDE,
    UDHCPC_SCRIPT,
    VIRTIO_MODULES,
    RamdiskBuildError,
    add_kernel_modules,
    find_kernel,
)

IMAGE_NAME = "vm-tiny"
IMAGE_BYTES = 64 * 1024 * 1024
PARTITION_START = 2048  # sectors
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")

TINY_INIT = BOOT_PRELUDE + """seed=$(cat /sys/class/dmi/id/product_serial 2>/dev/null)
url=${{seed##*;s=}}
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  wget -q -O /tmp/meta-data "${{url}}meta-data" && break
  sleep 2
done
wget -q -O /tmp/user-data "${{url}}user-data"
echo "vm-tiny: booted from disk; meta-data:"
cat /tmp/meta-data
echo "vm-tiny: first boot done"
while true; do sleep 3600; done
"""
SYSLINUX_CFG = """DEFAULT tiny
PROMPT 0
TIMEOUT 1
LABEL tiny
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 quiet
"""


def _tools() -> None:
    for tool, package in (("mkfs.fat", "dosfstools"), ("mcopy", "mtools"),
                          ("syslinux", "syslinux"), ("busybox", "busybox-static")):
        if shutil.which(tool) is None:
            raise RamdiskBuildError(f"{tool} is missing; install `apt-get install {package}`")
    if not MBR_CODE.exists():
        raise RamdiskBuildError(f"{MBR_CODE} is missing; install `apt-get install syslinux-common`")


def _initrd(out: Path, kernel_version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mf-tiny-") as tmp:
        tree = Path(tmp)
        (tree / "bin").mkdir()
        (tree / "etc").mkdir()
        shutil.copy2(shutil.which("busybox") or "/bin/busybox", tree / "bin/busybox")
        init = tree / "init"
        init.write_text(TINY_INIT.format(modules=" ".join(VIRTIO_MODULES)))
        init.chmod(0o755)
        script = tree / "etc/udhcpc.script"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        add_kernel_modules(tree, kernel_version, Path("/lib/modules"))
        with gzip.open(out, "wb", compresslevel=9) as handle:
            write_newc(tree, handle)  # type: ignore[arg-type]


def _partition_entry(start: int, sectors: int) -> bytes:
    # Bootable, CHS fields unused (0xFEFFFF = "use LBA"), type 0x0E FAT16 LBA.
    return struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x0E, b"\xfe\xff\xff", start, sectors)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def build_tiny_image(out_dir: Path) -> tuple[Path, str, int]:
    """Build vm-tiny.raw in ``out_dir``; returns its path, sha256 and size."""
    _tools()
    kernel, kernel_version = find_kernel()
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / f"{IMAGE_NAME}.raw"
    sectors = IMAGE_BYTES // 512 - PARTITION_START
    with tempfile.TemporaryDirectory(prefix="mf-tiny-img-") as tmp:
        work = Path(tmp)
        initrd = work / "initrd.gz"
        _initrd(initrd, kernel_version)
        (work / "syslinux.cfg").write_text(SYSLINUX_CFG)
        shutil.copy2(kernel, work / "vmlinuz")
        part = work / "part.img"
        with part.open("wb") as handle:
            handle.truncate(sectors * 512)
        _run("mkfs.fat", "-F", "16", "-n", "VMTINY", str(part))
        _run("mcopy", "-i", str(part), str(work / "vmlinuz"), str(initrd),
            str(work / "syslinux.cfg"), "::")
        _run("syslinux", "--install", str(part))
        mbr = bytearray(512)
        mbr[:440] = MBR_CODE.read_bytes()[:440].ljust(440, b"\0")
        mbr[446:462] = _partition_entry(PARTITION_START, sectors)
        mbr[510:512] = b"\x55\xaa"
        with image.open("wb") as handle:
            handle.write(bytes(mbr))
            handle.seek(PARTITION_START * 512)
            with part.open("rb") as source:
                shutil.copyfileobj(source, handle, 4 * 1024 * 1024)
            handle.truncate(IMAGE_BYTES)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    return image, digest, IMAGE_BYTES
