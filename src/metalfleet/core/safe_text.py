"""Safe text for anything that can reach a scheduler command line (pure, no I/O).

Drain, resume and maintenance reasons, health check names and components (from agents, BMC
sweeps and Alertmanager labels), node and cluster names end up as arguments of ``scontrol``
or ``kubectl``, possibly through ``ssh``, which joins its arguments into one remote shell
line. Quoting (``shlex.quote``) is the real guard there; this module is the second one: every
such string is held to a small character set with no shell metacharacter at all, so even a
prefix that forgets to quote cannot be made to run anything.

Two ways to apply it:

- ``require_*`` refuses (``ValueError``, which Pydantic turns into a 422, or the caller turns
  into a domain error) a value a caller sent: the caller learns what is allowed;
- ``sanitize_*`` replaces what is not allowed with ``_`` for values metalfleet composes
  itself from untrusted parts (a reason made from an agent's component, a database value).

Spaces are shell-inert once every argument is one argv entry or ``shlex``-quoted (the
scheduler hooks do both), so reasons and components keep theirs: a component is often a
BMC sensor's real name (``Inlet Temp``, ``CPU1 Temp``), and renaming it would make the
signal, the ticket and the drain reason disagree with what the BMC and the operator see.
Check names are metalfleet's own identifiers and stay without spaces.
"""

from __future__ import annotations

import re

# Free text (reasons): letters, digits, space and . _ : , / @ + = % -  (no quote, $, `, ;, &,
# |, <, >, (, ), {, }, *, ?, [, ], !, ~, #, \ or control character).
REASON_CHARS = "letters, digits, spaces and . _ : , / @ + = % -"
REASON_MAX = 200
_REASON_BAD = re.compile(r"[^A-Za-z0-9 ._:,/@+=%-]")

# Tokens (check names): like the above without spaces, commas, = or %.
TOKEN_CHARS = "letters, digits and . _ : / @ + -"
CHECK_MAX = 63
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9._:/@+-]")

# Components (a GPU, a port, a BMC sensor such as "Inlet Temp"): tokens plus single spaces.
COMPONENT_CHARS = "letters, digits, spaces and . _ : / @ + -"
COMPONENT_MAX = 127
_COMPONENT_BAD = re.compile(r"[^A-Za-z0-9 ._:/@+-]")

# Node and cluster names: the inventory's name pattern.
NAME_CHARS = "lower-case letters, digits, '.', '_' and '-' (at most 63, no leading '-')"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


def _require(value: str, bad: re.Pattern[str], limit: int, what: str, allowed: str) -> str:
    if len(value) > limit:
        raise ValueError(f"{what} is too long ({len(value)} characters; at most {limit})")
    found = sorted(set(bad.findall(value)))
    if found:
        shown = " ".join(repr(c) for c in found[:8])
        raise ValueError(f"{what} may contain only {allowed}; not {shown}")
    return value


def require_reason(value: str, what: str = "reason") -> str:
    """A caller's reason on one line (runs of whitespace, line breaks included, become one
    space: Slurm wants one line), or ValueError naming the allowed characters."""
    return _require(" ".join(value.split()), _REASON_BAD, REASON_MAX, what, REASON_CHARS)


def require_component(value: str, what: str = "component") -> str:
    """A caller's component with runs of whitespace made one space (as
    :func:`sanitize_component` does, so both find the same signal), or ValueError."""
    return _require(" ".join(value.split()), _COMPONENT_BAD, COMPONENT_MAX, what,
                    COMPONENT_CHARS)


def require_check(value: str, what: str = "check") -> str:
    return _require(value, _TOKEN_BAD, CHECK_MAX, what, TOKEN_CHARS)


def is_name(value: str) -> bool:
    return bool(_NAME.fullmatch(value))


def require_name(value: str, what: str = "name") -> str:
    if not is_name(value):
        raise ValueError(f"{what} {value[:80]!r} is not a valid name: {NAME_CHARS}")
    return value


def sanitize_reason(value: str, default: str = "drained by metalfleet") -> str:
    """One line of allowed characters (others become ``_``), at most REASON_MAX long."""
    text = _REASON_BAD.sub("_", " ".join(value.split()))[:REASON_MAX].strip()
    return text or default


def sanitize_token(value: str, limit: int = CHECK_MAX) -> str:
    """A check name with every disallowed character replaced by ``_``."""
    return _TOKEN_BAD.sub("_", value)[:limit]


def sanitize_component(value: str) -> str:
    """A component on one line (runs of whitespace become one space) with every other
    disallowed character replaced by ``_``, at most COMPONENT_MAX long."""
    return _COMPONENT_BAD.sub("_", " ".join(value.split()))[:COMPONENT_MAX].strip()
