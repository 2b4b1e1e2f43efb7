"""Placement on synthetic topologies: fewest leaves, best fit, same leaf, spread racks."""

from __future__ import annotations

import math
import random

import pytest

from metalfleet.scheduling.placement import Candidate, PlacementError, min_leaves, place


def fleet(free_per_leaf: dict[str, int], leaves_per_rack: int = 1) -> list[Candidate]:
    nodes = []
    for index, (leaf, free) in enumerate(sorted(free_per_leaf.items())):
        rack = f"rack-{index // leaves_per_rack}"
        nodes += [Candidate(f"{leaf}-n{i:02d}", rack, leaf) for i in range(free)]
    return nodes


def test_a_gang_that_fits_one_leaf_takes_the_smallest_leaf_that_holds_it() -> None:
    pool = fleet({"leaf-a": 32, "leaf-b": 10, "leaf-c": 6, "leaf-d": 4})
    placement = place(pool, 5)
    assert placement.leaves == {"leaf-c"}  # best fit: leaf-a and leaf-b stay whole
    assert len(placement.names) == len(set(placement.names)) == 5


def test_a_large_gang_uses_the_fewest_leaves_fullest_first() -> None:
    pool = fleet({"leaf-a": 32, "leaf-b": 30, "leaf-c": 20, "leaf-d": 3, "leaf-e": 2})
    placement = place(pool, 64)
    assert len(placement.leaves) == 3 == min_leaves([32, 30, 20, 3, 2], 64)
    # 62 from the two fullest, the last 2 from the smallest leaf that holds 2: leaf-e.
    assert placement.leaves == {"leaf-a", "leaf-b", "leaf-e"}


def test_random_fragmented_pools_always_reach_the_minimum_number_of_leaves() -> None:
    rng = random.Random(7)
    for _ in range(200):
        sizes = {f"leaf-{i:03d}": rng.randint(0, 32) for i in range(rng.randint(1, 40))}
        sizes = {k: v for k, v in sizes.items() if v}
        total = sum(sizes.values())
        if not total:
            continue
        count = rng.randint(1, total)
        placement = place(fleet(sizes), count)
        assert len(set(placement.names)) == count
        assert len(placement.leaves) == min_leaves(sizes.values(), count)
        assert len(placement.leaves) >= math.ceil(count / 32)


def test_too_few_free_nodes_says_how_many_are_free() -> None:
    with pytest.raises(PlacementError) as caught:
        place(fleet({"leaf-a": 3}), 5)
    assert "only 3 free" in caught.value.detail and caught.value.extra["free"] == 3


def test_same_leaf_is_hard_and_picks_the_best_fitting_leaf() -> None:
    pool = fleet({"leaf-a": 32, "leaf-b": 12, "leaf-c": 8})
    assert place(pool, 10, same_leaf=True).leaves == {"leaf-b"}
    with pytest.raises(PlacementError) as caught:
        place(pool, 33, same_leaf=True)
    assert caught.value.extra["largest_leaf"] == 32
    assert "drop --same-leaf" in caught.value.detail


def test_spread_racks_uses_every_rack_evenly() -> None:
    pool = fleet({"leaf-a": 8, "leaf-b": 8, "leaf-c": 8, "leaf-d": 2})
    placement = place(pool, 8, spread_racks=True)
    racks = [c.rack for c in placement.nodes]
    assert len(set(racks)) == 4
    assert sorted(racks.count(r) for r in set(racks)) == [2, 2, 2, 2]


def test_nodes_without_a_known_leaf_are_not_assumed_to_share_one() -> None:
    pool = [Candidate(f"x{i}", "r1", None) for i in range(4)]
    assert len(place(pool, 3).leaves) == 3
    with pytest.raises(PlacementError):
        place(pool, 2, same_leaf=True)


def test_placement_is_deterministic() -> None:
    pool = fleet({"leaf-a": 7, "leaf-b": 7, "leaf-c": 7})
    assert place(pool, 9).names == place(list(reversed(pool)), 9).names
