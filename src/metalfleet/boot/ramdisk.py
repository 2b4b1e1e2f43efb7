"""Build the deploy ramdisk: a Debian kernel and a small initramfs that boots into the agent.

The initramfs holds busybox (static), the Debian python3 binary with the shared libraries it
links, only the standard-library modules the agent uses (as unchecked-hash .pyc, so nothing
is compiled at boot), the agent's own package, and the virtio kernel modules virtual
machines need. Everything comes from Debian packages (linux-image-amd64, busybox-static,
python3.11): see docs/ramdisk.md for its size and contents.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import metalfleet
from metalfleet.boot.cpio import write_newc
from metalfleet.core.errors import MetalfleetError

# Load order matters: each module needs the ones before it (modprobe --show-depends).
VIRTIO_MODULES = [
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
    "failover", "net_failover", "virtio_net", "virtio_blk", "virtio_scsi",
]
# What the agent imports, directly or lazily inside functions.
AGENT_IMPORTS = [
    "metalfleet.agent.main", "metalfleet.agent.boot", "metalfleet.agent.daemon",
    "metalfleet.agent.disk",
    "metalfleet.agent.inventory", "metalfleet.agent.burnin", "metalfleet.agent.hardware_root",
    "json", "urllib.request", "http.client", "hashlib", "ctypes", "fcntl", "struct",
    "argparse", "threading", "random", "secrets", "encodings.idna", "encodings.latin_1",
]
# Mount the kernel file systems, load the virtio drivers, DHCP on the first NIC that answers.
# Shared by the deploy ramdisk and the vm-tiny image (lab/vm/tiny_image.py).
BOOT_PRELUDE = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in {modules}; do
  [ -f /lib/modules/$module.ko ] && insmod /lib/modules/$module.ko 2>/dev/null
done
ip link set lo up
for dev in /sys/class/net/*; do
  name=${{dev##*/}}
  [ "$name" = lo ] && continue
  ip link set "$name" up
  udhcpc -i "$name" -s /etc/udhcpc.script -q -n -t 10 >/dev/null 2>&1 && break
done
"""
INIT = BOOT_PRELUDE + """export PYTHONPATH=/opt/metalfleet PYTHONDONTWRITEBYTECODE=1 PYTHONHOME=/usr
python3 -S -m metalfleet.agent.main boot
after=$(sed -n 's/.*metalfleet.after=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
case "$after" in
  reboot) echo b > /proc/sysrq-trigger ;;
  shell) exec sh ;;
  *) echo o > /proc/sysrq-trigger ;;
esac
sleep 5
"""
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"""


class RamdiskBuildError(MetalfleetError):
    status = 500
    title = "Ramdisk build failed"


@dataclass
class Ramdisk:
    kernel: Path
    initrd: Path
    kernel_version: str
    initrd_bytes: int
    files: int
    stdlib_modules: list[str] = field(default_factory=list)


def find_kernel(boot_dir: Path = Path("/boot")) -> tuple[Path, str]:
    kernels = sorted(boot_dir.glob("vmlinuz-*"))
    if not kernels:
        raise RamdiskBuildError(
            "no kernel in /boot; install one with `apt-get install linux-image-amd64`"
        )
    kernel = kernels[-1]
    return kernel, kernel.name.removeprefix("vmlinuz-")


def _shared_libraries(binary: Path) -> list[Path]:
    output = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    libraries = []
    for line in output.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                libraries.append(Path(part))
                break
    return libraries


def _copy_with_libraries(binary: Path, tree: Path, target: str) -> None:
    destination = tree / target.lstrip("/")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, destination)
    for library in _shared_libraries(binary):
        copy = tree / str(library).lstrip("/")
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library.resolve(), copy)


STDLIB_PROBE = """
import importlib, modulefinder, sys, sysconfig
names = sys.argv[1:]
for name in names:
    importlib.import_module(name)
finder = modulefinder.ModuleFinder(excludes=["tkinter", "unittest", "pydoc", "doctest"])
for name in names:
    if name.startswith("metalfleet."):
        finder.import_hook(name)
files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
files |= {m.__file__ for m in finder.modules.values()}
stdlib = sysconfig.get_paths()["stdlib"]
for path in sorted(f for f in files if f and f.startswith(stdlib)):
    print(path)
"""


def _stdlib_files(python: Path, source_root: Path) -> list[Path]:
    """Standard-library files the agent needs, found by importing it with the target python."""
    env = {"PYTHONPATH": str(source_root), "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [str(python), "-S", "-c", STDLIB_PROBE, *AGENT_IMPORTS],
        capture_output=True, text=True, env=env,
    )
    if result.returncode != 0:
        raise RamdiskBuildError(f"{python} cannot import the agent: {result.stderr[-500:]}")
    return [Path(line) for line in result.stdout.splitlines() if line]


def _add_python(tree: Path, python: Path, source_root: Path) -> list[str]:
    _copy_with_libraries(python, tree, "/usr/bin/python3")
    stdlib_dir = Path(subprocess.run(
        [str(python), "-S", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    modules = []
    for path in _stdlib_files(python, source_root):
        relative = path.relative_to(stdlib_dir)
        destination = tree / "usr/lib" / stdlib_dir.name / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".so":
            _copy_with_libraries(path, tree, str(destination.relative_to(tree)))
        else:
            shutil.copy2(path, destination)
        modules.append(str(relative))
    # Python needs os.py as a landmark to find its home; make sure it is there.
    landmark = tree / "usr/lib" / stdlib_dir.name / "os.py"
    if not landmark.exists():
        shutil.copy2(stdlib_dir / "os.py", landmark)
    package = tree / "opt/metalfleet/metalfleet"
    for part in ["__init__.py", "core/__init__.py", "core/errors.py", "agent"]:
        source = source_root / "metalfleet" / part
        destination = package / part
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination)
    # Compile once here: compiling at boot costs seconds under emulation.
    for where in (tree / "usr/lib", tree / "opt/metalfleet"):
        subprocess.run([str(python), "-S", "-m", "compileall", "-q", "-b",
                        "--invalidation-mode", "unchecked-hash", str(where)], check=True)
        for source_file in where.rglob("*.py"):
            if source_file.name != "os.py":
                source_file.unlink()
    return sorted(modules)


def add_kernel_modules(tree: Path, kernel_version: str, modules_dir: Path) -> None:
    destination = tree / "lib/modules"
    destination.mkdir(parents=True, exist_ok=True)
    base = modules_dir / kernel_version / "kernel"
    for name in VIRTIO_MODULES:
        found = next(iter(sorted(base.rglob(f"{name}.ko*"))), None)
        if found is None:
            continue  # built into this kernel
        data = found.read_bytes()
        if found.suffix == ".xz":
            data = lzma.decompress(data)
        (destination / f"{name}.ko").write_bytes(data)


def build_ramdisk(
    out_dir: Path,
    *,
    python: Path = Path("/usr/bin/python3.11"),
    busybox: Path = Path("/bin/busybox"),
    boot_dir: Path = Path("/boot"),
    modules_dir: Path = Path("/lib/modules"),
) -> Ramdisk:
    for tool, package in ((python, "python3.11"), (busybox, "busybox-static")):
        if not tool.exists():
            raise RamdiskBuildError(f"{tool} is missing; install it with "
                                    f"`apt-get install {package}`")
    kernel, kernel_version = find_kernel(boot_dir)
    source_root = Path(metalfleet.__file__).resolve().parent.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mf-ramdisk-") as tmp:
        tree = Path(tmp)
        (tree / "bin").mkdir()
        shutil.copy2(busybox, tree / "bin/busybox")
        for directory in ("proc", "sys", "dev", "tmp", "run", "etc"):
            (tree / directory).mkdir(exist_ok=True)
        init = tree / "init"
        init.write_text(INIT.format(modules=" ".join(VIRTIO_MODULES)))
        init.chmod(0o755)
        script = tree / "etc/udhcpc.script"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        modules = _add_python(tree, python, source_root)
        add_kernel_modules(tree, kernel_version, modules_dir)
        initrd = out_dir / "metalfleet-ramdisk.initrd"
        with gzip.open(initrd, "wb", compresslevel=9) as out:
            files = write_newc(tree, out)  # type: ignore[arg-type]
    kernel_copy = out_dir / "metalfleet-ramdisk.kernel"
    shutil.copy2(kernel, kernel_copy)
    return Ramdisk(kernel=kernel_copy, initrd=initrd, kernel_version=kernel_version,
                   initrd_bytes=initrd.stat().st_size, files=files, stdlib_modules=modules)
