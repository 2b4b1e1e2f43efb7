import io
import os
from pathlib import Path

from metalfleet.boot.cpio import write_newc


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries, offset = {}, 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        fields = [int(data[offset + 6 + i * 8: offset + 14 + i * 8], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        offset += 110
        name = data[offset:offset + name_size - 1].decode()
        offset += name_size + (-(110 + name_size) % 4)
        body = data[offset:offset + size]
        offset += size + (-size % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body)


def test_archive_round_trips_files_dirs_and_links(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"\x7fELF" + bytes(range(7)))
    (tmp_path / "init").write_text("#!/bin/sh\n")
    (tmp_path / "init").chmod(0o755)
    os.symlink("busybox", tmp_path / "bin" / "sh")
    out = io.BytesIO()
    assert write_newc(tmp_path, out) == 4
    entries = parse_newc(out.getvalue())
    assert entries["bin/busybox"][1] == b"\x7fELF" + bytes(range(7))
    assert entries["init"][0] & 0o777 == 0o755
    assert entries["bin/sh"][1] == b"busybox" and entries["bin/sh"][0] & 0o170000 == 0o120000
    assert entries["bin"][0] & 0o170000 == 0o040000
