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
