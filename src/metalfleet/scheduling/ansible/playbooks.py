"""The GPU node playbook and roles shipped as package data (``ansible/files``), written out by
``metalfleet ansible playbooks --dir DIR``."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

ROLES = ("nvidia_driver", "cuda_toolkit", "nvidia_container_toolkit", "gpu_tuning")


def _walk(node: Traversable, prefix: Path) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            found += _walk(child, prefix / child.name)
        elif not child.name.startswith("."):
            found.append((prefix / child.name, child))
    return found


def bundled() -> dict[Path, bytes]:
    """relative path -> content of every playbook and role file."""
    root = resources.files("metalfleet.scheduling.ansible") / "files"
    return {path: item.read_bytes() for path, item in _walk(root, Path())}


def write(directory: Path, *, overwrite: bool = False) -> list[Path]:
    """Write them under ``directory``; refuses to replace a file that differs unless told."""
    files = bundled()
    clashes = [directory / p for p, data in files.items()
               if (directory / p).exists() and (directory / p).read_bytes() != data]
    if clashes and not overwrite:
        raise FileExistsError(f"{len(clashes)} files differ from metalfleet's, e.g. {clashes[0]}")
    written = []
    for path, data in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written
