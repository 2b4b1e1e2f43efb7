"""Benchmark: the agent's image write against `dd` of the same image to the same target.

Writes a raw image of random data (so no block is skipped as a hole), in one run, with the
same image and the same target each time:

- page cache: `dd bs=4M conv=fsync` against the agent (buffered writes, fsync), the agent
  streaming it over HTTP from a local server (what a deploy does: download, sha256, write,
  fsync, verify) and reading it from a file:// URL;
- direct: `dd bs=4M oflag=direct conv=fsync` against the agent with O_DIRECT writes, both
  bypassing the page cache, so the target runs at the disk's speed rather than memcpy's.

The target is a fresh sparse file beside the image (``--dir``), or with ``--loop`` a loop
device over such a file (a real block device; needs root). It also times SHA-256 alone over
the image (one core, from memory) and the HTTP download alone (to /dev/null): the agent
cannot be faster than either. Prints MiB/s
(median of ``--runs``) and the agent/dd ratios (target >= 0.9).

    .venv/bin/python bench/image_write.py --size-mib 1024 --runs 3 [--loop]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import os
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from metalfleet.agent.disk import write_image

MIB = 1024 * 1024


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def make_image(path: Path, size_mib: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for index in range(size_mib):
            chunk = index.to_bytes(8, "little") + block[8:]
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def fresh_target(path: Path, size: int) -> None:
    """A new sparse file; a block device is kept (overwritten in place)."""
    if path.is_block_device():
        return
    path.unlink(missing_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def hash_only(image: Path) -> None:
    digest = hashlib.sha256()
    with image.open("rb", buffering=0) as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)


def download_only(url: str) -> None:
    """The HTTP server and the client alone, to /dev/null: the agent cannot be faster."""
    buffer = bytearray(4 * MIB)
    with urllib.request.urlopen(url) as response:
        while response.readinto(buffer):
            pass


def dd(image: Path, target: Path, direct: bool) -> None:
    flags = ["oflag=direct", "conv=fsync,notrunc"] if direct else ["conv=fsync,notrunc"]
    subprocess.run(["dd", f"if={image}", f"of={target}", "bs=4M", *flags, "status=none"],
                   check=True)


def attach_loop(backing: Path, size: int) -> Path:
    with backing.open("wb") as handle:
        handle.truncate(size)
    # --direct-io: the loop device writes its backing file with O_DIRECT, so it runs at the
    # disk's speed, not the page cache's (without it dd oflag=direct runs at memcpy speed).
    out = subprocess.run(["losetup", "--direct-io=on", "--find", "--show", str(backing)],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where image and target live")
    parser.add_argument("--loop", action="store_true", help="target a loop device (root)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        image = work / "image.raw"
        sha = make_image(image, args.size_mib)
        size = image.stat().st_size
        target = attach_loop(work / "target.disk", size * 2) if args.loop \
            else work / "target.disk"
        handler = functools.partial(Quiet, directory=str(work))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/image.raw"
        cases: dict[str, Callable[[], object]] = {
            "sha256 alone": lambda: hash_only(image),
            "http read alone": lambda: download_only(url),
        }
        for mode, direct in (("cache", False), ("direct", True)):
            cases[f"dd {mode}"] = functools.partial(dd, image, target, direct)
            cases[f"agent-http {mode}"] = functools.partial(
                write_image, url, target, sha, size, direct=direct)
            cases[f"agent-file {mode}"] = functools.partial(
                write_image, image.as_uri(), target, sha, size, direct=direct)
        results: dict[str, list[float]] = {name: [] for name in cases}
        try:
            for _ in range(args.runs):
                for name, action in cases.items():
                    fresh_target(target, size * 2)
                    results[name].append(timed(action))
        finally:
            server.shutdown()
            if args.loop:
                subprocess.run(["losetup", "--detach", str(target)], check=False)
    mib = size / MIB
    rate = {name: mib / statistics.median(times) for name, times in results.items()}
    print(f"target: {'loop device' if args.loop else 'sparse file'} in "
          f"{args.dir or tempfile.gettempdir()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    for name, value in rate.items():
        print(f"{name:18s} {value:8.1f} MiB/s  (median of {args.runs}, {mib:.0f} MiB)")
    for mode in ("cache", "direct"):
        dd_rate = rate[f"dd {mode}"]
        print(f"ratio {mode:6s} agent-http/dd {rate[f'agent-http {mode}'] / dd_rate:.2f}   "
              f"agent-file/dd {rate[f'agent-file {mode}'] / dd_rate:.2f}")


if __name__ == "__main__":
    main()
