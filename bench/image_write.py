"""Benchmark: the agent's image write against `dd` of the same image to the same target.

Writes a raw image of random data (so no block is skipped as a hole) three ways, in one run:
`dd if=IMAGE of=TARGET bs=4M conv=fsync` (the floor), the agent streaming it over HTTP from
a local server (what a deploy does: download, sha256, write, fsync, verify), and the agent
reading it from a file:// URL. Prints MiB/s and the agent/dd ratios (target >= 0.9).

    .venv/bin/python bench/image_write.py --size-mib 1024
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
from pathlib import Path

from metalfleet.agent.disk import write_image


def make_image(path: Path, size_mib: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for index in range(size_mib):
            chunk = index.to_bytes(8, "little") + block[8:]
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def fresh_target(path: Path, size: int) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where image and target live")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        image, target = work / "image.raw", work / "target.disk"
        sha = make_image(image, args.size_mib)
        size = image.stat().st_size
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(work))
        handler.log_message = lambda *a: None  # type: ignore[attr-defined]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/image.raw"
        results: dict[str, list[float]] = {"dd": [], "agent-http": [], "agent-file": []}
        for _ in range(args.runs):
            fresh_target(target, size * 2)
            results["dd"].append(timed(lambda: subprocess.run(
                ["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync,notrunc",
                 "status=none"], check=True)))
            fresh_target(target, size * 2)
            results["agent-http"].append(timed(lambda: write_image(url, target, sha, size)))
            fresh_target(target, size * 2)
            results["agent-file"].append(timed(lambda: write_image(
                f"file://{image}", target, sha, size)))
        server.shutdown()
    mib = size / 1024**2
    rate = {name: mib / statistics.median(times) for name, times in results.items()}
    for name, value in rate.items():
        print(f"{name:11s} {value:8.1f} MiB/s  (median of {args.runs}, {mib:.0f} MiB)")
    print(f"ratio agent-http/dd {rate['agent-http'] / rate['dd']:.2f}   "
          f"agent-file/dd {rate['agent-file'] / rate['dd']:.2f}")


if __name__ == "__main__":
    main()
