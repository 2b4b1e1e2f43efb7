"""Files only the service account can read: the data dir, the database, keys and tokens.

The data dir holds the SQLite database (every BMC credential, encrypted, and every token hash),
the credential key that decrypts them and the admin token: one readable file is a fleet
takeover. So the data dir is 0700 and each of these files 0600, created that way (never
chmod-ed after the content is written) and tightened at start-up when an older version, a
restore or an operator's ``cp`` left them wider, with a log line saying so.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# SQLite's companions of a database file; it creates them with the main file's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
# Files at the top of the data dir that hold secrets (names as server.py and secrets.py use).
SECRET_FILES = ("admin.token", "secret.key")
LAB_DIR = "lab"


def restrict(path: Path, mode: int) -> bool:
    """Take away every permission beyond ``mode``; True when something had to change."""
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return False
    if path.is_symlink() or current & ~mode == 0:
        return False
    try:
        os.chmod(path, current & mode)
    except OSError as exc:  # a read-only mount or someone else's file: say so, carry on
        log.warning("%s is mode %o (readable by others) and cannot be tightened: %s",
                    path, current, exc)
        return False
    log.warning("tightened the mode of %s from %o to %o", path, current, current & mode)
    return True


def make_private_dir(path: Path) -> None:
    """Create ``path`` (0700) or tighten it when it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    restrict(path, PRIVATE_DIR)


def create_private(path: Path) -> None:
    """Create an empty 0600 file unless it exists (then tighten it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        restrict(path, PRIVATE_FILE)
        return
    os.close(fd)


def write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read (tokens, keys), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # an old .tmp left by a crash keeps its mode on O_CREAT
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    tmp.replace(path)


def secure_sqlite_file(database: Path) -> None:
    """Create the database file 0600 before SQLite first opens it; tighten an existing one.

    SQLite gives its -wal, -shm and -journal files the mode of the main file, so a private
    main file keeps them private too; the existing ones are tightened as well.
    """
    database.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    create_private(database)
    for suffix in SQLITE_COMPANIONS:
        restrict(database.with_name(database.name + suffix), PRIVATE_FILE)


def secure_data_dir(data_dir: Path) -> None:
    """The data dir 0700; its secret files and the lab's state 0600 (tightened at start-up)."""
    make_private_dir(data_dir)
    for name in SECRET_FILES:
        restrict(data_dir / name, PRIVATE_FILE)
    lab = data_dir / LAB_DIR
    if lab.is_dir() and not lab.is_symlink():
        restrict(lab, PRIVATE_DIR)
        for entry in lab.iterdir():
            if entry.is_file() and not entry.is_symlink():
                restrict(entry, PRIVATE_FILE)
