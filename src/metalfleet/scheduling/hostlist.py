"""Slurm-style host lists: ``lab-gpu-01,lab-gpu-02,lab-gpu-03`` -> ``lab-gpu-[01-03]``."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

_TAIL = re.compile(r"^(.*?)(\d+)$")


def ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2,5``."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def compress(names: Iterable[str]) -> str:
    """Group names that differ only in a zero-padded trailing number into bracket ranges."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    plain: list[str] = []
    for name in sorted(set(names)):
        match = _TAIL.match(name)
        if match is None:
            plain.append(name)
            continue
        prefix, digits = match.groups()
        groups[(prefix, len(digits))].append(int(digits))
    parts = list(plain)
    for (prefix, width), numbers in sorted(groups.items()):
        if len(numbers) == 1:
            parts.append(f"{prefix}{numbers[0]:0{width}d}")
            continue
        spans = []
        for span in ranges(numbers).split(","):
            low, _, high = span.partition("-")
            text = f"{int(low):0{width}d}"
            if high:
                text += f"-{int(high):0{width}d}"
            spans.append(text)
        parts.append(f"{prefix}[{','.join(spans)}]")
    return ",".join(parts)


_BRACKET = re.compile(r"\[([^\[\]]*)\]")
MAX_EXPANDED = 100_000


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: ``a[1-2],b`` -> ``a[1-2]``, ``b``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in host list {text!r}")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced '[' in host list {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _numbers(spec: str, whole: str) -> list[str]:
    out: list[str] = []
    for span in spec.split(","):
        low, dash, high = span.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"bad range {span!r} in host list {whole!r}; use e.g. n[01-04,07]")
        if not dash:
            out.append(low)
            continue
        first, last = int(low), int(high)
        if last < first:
            raise ValueError(f"range {span!r} runs backwards in host list {whole!r}")
        if last - first >= MAX_EXPANDED:
            raise ValueError(f"range {span!r} in host list {whole!r} is too large")
        out += [f"{n:0{len(low)}d}" for n in range(first, last + 1)]
    return out


def expand(hostlist: str) -> list[str]:
    """Slurm's host list back to names: ``gpu-[01-03],login`` -> ``gpu-01 gpu-02 gpu-03 login``.

    Several bracket groups in one name multiply (``r[1-2]n[1-2]``), as in Slurm."""
    names: list[str] = []
    for part in _split_top(hostlist):
        pending = [part]
        expanded: list[str] = []
        while pending:
            name = pending.pop(0)
            match = _BRACKET.search(name)
            if match is None:
                expanded.append(name)
                continue
            head, tail = name[: match.start()], name[match.end():]
            pending[:0] = [f"{head}{n}{tail}" for n in _numbers(match.group(1), hostlist)]
            if len(pending) + len(expanded) > MAX_EXPANDED:
                raise ValueError(f"host list {hostlist!r} names too many hosts")
        names += expanded
    return list(dict.fromkeys(names))
