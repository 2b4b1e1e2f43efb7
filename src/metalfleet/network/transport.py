"""How a switch dialect's commands reach the switch: here, in a network namespace, or SSH.

Commands are argument lists, never shell strings. Locally they run without a shell; over SSH
the switch's shell joins them, so each argument is quoted with :func:`shlex.join` (a port or
bridge name is validated before it gets here too). SSH goes through netmiko, the library
networking-generic-switch uses for the same job, with its ``linux`` device type for hosts
whose switch is the Linux bridge (Cumulus, SONiC and plain Linux all are, inside).
"""

from __future__ import annotations

import abc
import importlib
import shlex
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from metalfleet.network.switch import SwitchError

COMMAND_TIMEOUT_S = 30.0
_RC_MARK = "__metalfleet_rc="


class CommandFailed(SwitchError):
    """The switch ran the command and said no (non-zero exit status)."""

    def __init__(self, argv: Sequence[str], status: int, output: str) -> None:
        text = output.strip()[-400:] or "no output"
        super().__init__(f"switch command `{shlex.join(argv)}` failed (exit {status}): {text}")
        self.status = status
        self.output = output


class Transport(abc.ABC):
    @abc.abstractmethod
    def run(self, argv: Sequence[str]) -> str:
        """Run one command on the switch; its standard output, or :class:`CommandFailed`."""

    def close(self) -> None:
        return None


@dataclass
class LocalTransport(Transport):
    """This host is the switch (the lab); ``netns``: run inside that network namespace."""

    netns: str | None = None
    prefix: Sequence[str] = ()  # e.g. ("sudo", "-n") for an unprivileged service account

    def run(self, argv: Sequence[str]) -> str:
        full = [*self.prefix, *(["ip", "netns", "exec", self.netns] if self.netns else []),
                *argv]
        try:
            done = subprocess.run(full, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SwitchError(f"could not run `{shlex.join(full)}`: {exc}") from exc
        if done.returncode != 0:
            raise CommandFailed(argv, done.returncode, done.stderr or done.stdout)
        return done.stdout


@dataclass
class SshTransport(Transport):
    """A switch's own shell over SSH (netmiko). One connection per driver, opened lazily."""

    host: str
    username: str
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    port: int = 22
    device_type: str = "linux"
    prefix: Sequence[str] = ()
    connect_timeout_s: float = 15.0
    _connection: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _connect(self) -> Any:
        if self._connection is None:
            netmiko: Any = importlib.import_module("netmiko")
            try:
                self._connection = netmiko.ConnectHandler(
                    device_type=self.device_type, host=self.host, port=self.port,
                    username=self.username, password=self.password or "",
                    key_file=self.key_file, use_keys=self.key_file is not None,
                    allow_agent=False, conn_timeout=self.connect_timeout_s,
                    auth_timeout=self.connect_timeout_s, fast_cli=True)
            except Exception as exc:  # netmiko's timeout/auth errors, paramiko's, OSError
                raise SwitchError(f"cannot log in to switch {self.host}:{self.port} as "
                                  f"{self.username}: {type(exc).__name__}: {exc}") from exc
        return self._connection

    def run(self, argv: Sequence[str]) -> str:
        line = shlex.join([*self.prefix, *argv])
        with self._lock:  # one command at a time on one SSH channel
            connection = self._connect()
            try:
                output = str(connection.send_command(
                    f"{line}; echo {_RC_MARK}$?", read_timeout=COMMAND_TIMEOUT_S,
                    strip_prompt=True, strip_command=True))
            except Exception as exc:
                self.close()
                raise SwitchError(f"switch {self.host}: `{line}` did not complete: "
                                  f"{type(exc).__name__}: {exc}") from exc
        body, mark, status = output.rpartition(_RC_MARK)
        if not mark:
            raise SwitchError(f"switch {self.host}: no exit status after `{line}`: "
                              f"{output.strip()[-200:]!r}")
        code = int(status.strip().split()[0]) if status.strip() else -1
        if code != 0:
            raise CommandFailed(argv, code, body)
        return body

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.disconnect()
            except Exception:  # already gone: nothing to release
                return
