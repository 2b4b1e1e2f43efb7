"""Topology-aware placement of a gang of nodes: pure functions, no database.

A candidate is a free node with its rack and its leaf switch (the switch of its InfiniBand
port, or of its Ethernet port when it has no InfiniBand). Placement picks ``count`` of them:

- default: the fewest leaf switches. Leaves are taken fullest first while none can hold the
  rest of the gang alone; the rest then goes to the *smallest* leaf that holds it (best fit),
  so the big free leaves stay whole for the next gang.
- ``same_leaf``: every node on one leaf (hard); the smallest leaf that holds the gang.
- ``spread_racks``: as many racks as possible, nodes dealt round-robin over the racks
  (fullest racks first); inside a rack the fullest leaf first.

Nodes whose leaf is unknown count as a leaf of their own: nothing says they share a switch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from metalfleet.core.errors import ConflictError


@dataclass(frozen=True)
class Candidate:
    name: str
    rack: str | None = None
    leaf: str | None = None

    @property
    def leaf_key(self) -> str:
        return self.leaf if self.leaf is not None else f"(no switch) {self.name}"


class PlacementError(ConflictError):
    title = "Not enough nodes"


@dataclass(frozen=True)
class Placement:
    nodes: list[Candidate]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.nodes]

    @property
    def leaves(self) -> set[str]:
        return {c.leaf_key for c in self.nodes}

    @property
    def racks(self) -> set[str | None]:
        return {c.rack for c in self.nodes}


def group_by_leaf(candidates: Iterable[Candidate]) -> dict[str, list[Candidate]]:
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        groups[candidate.leaf_key].append(candidate)
    for members in groups.values():
        members.sort(key=lambda c: c.name)
    return dict(groups)


def min_leaves(sizes: Iterable[int], count: int) -> int | None:
    """Fewest leaves whose free nodes add up to ``count`` (None: the pool is too small)."""
    total = 0
    for used, size in enumerate(sorted(sizes, reverse=True), start=1):
        total += size
        if total >= count:
            return used
    return None if count > 0 else 0


def place(
    candidates: Sequence[Candidate], count: int, *, same_leaf: bool = False,
    spread_racks: bool = False,
) -> Placement:
    if count < 1:
        raise ValueError("a gang has at least one node")
    if len(candidates) < count:
        raise PlacementError(
            f"{count} nodes asked for, only {len(candidates)} free that match",
            free=len(candidates), requested=count,
        )
    groups = group_by_leaf(candidates)
    if same_leaf:
        fitting = [key for key, members in groups.items() if len(members) >= count]
        if not fitting:
            largest = max(len(members) for members in groups.values())
            raise PlacementError(
                f"no leaf switch has {count} free nodes that match (the most on one leaf is "
                f"{largest}); ask for fewer nodes or drop --same-leaf",
                free=len(candidates), requested=count, largest_leaf=largest,
            )
        best = min(fitting, key=lambda key: (len(groups[key]), key))
        pool = groups[best]
        chosen = _spread(pool, count) if spread_racks else pool[:count]
        return Placement(chosen)
    if spread_racks:
        return Placement(_spread(list(candidates), count))
    return Placement(_fewest_leaves(groups, count))


def _fewest_leaves(groups: dict[str, list[Candidate]], count: int) -> list[Candidate]:
    # Fullest first; the name breaks ties so the answer is deterministic.
    order = sorted(groups, key=lambda key: (-len(groups[key]), key))
    sizes = [len(groups[key]) for key in order]
    chosen: list[Candidate] = []
    remaining = count
    for i, key in enumerate(order):
        if sizes[i] >= remaining:
            # Best fit among the leaves not taken yet (all after i): the smallest that holds
            # the rest, so larger free leaves stay whole.
            best = order[_smallest_fitting(sizes, remaining)]
            return chosen + groups[best][:remaining]
        chosen += groups[key]
        remaining -= sizes[i]
    raise AssertionError("place() checked that the pool is large enough")


def _smallest_fitting(descending: list[int], need: int) -> int:
    """Index of the last size >= need in a descending list (binary search)."""
    lo, hi = 0, len(descending) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if descending[mid] >= need:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _spread(candidates: list[Candidate], count: int) -> list[Candidate]:
    by_rack: dict[str | None, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_rack[candidate.rack].append(candidate)
    queues: list[list[Candidate]] = []
    for rack in sorted(by_rack, key=lambda r: (-len(by_rack[r]), r or "")):
        groups = group_by_leaf(by_rack[rack])
        ordered = [c for key in sorted(groups, key=lambda k: (-len(groups[k]), k))
                   for c in groups[key]]
        queues.append(ordered[::-1])  # pop() from the end
    chosen: list[Candidate] = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen
