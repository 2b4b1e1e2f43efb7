from __future__ import annotations

import pytest

from metalfleet.scheduling.hostlist import compress, expand, ranges


def test_ranges() -> None:
    assert ranges([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert ranges([3]) == "3"


def test_compress_keeps_zero_padding_and_plain_names() -> None:
    names = ["lab-gpu-03", "lab-gpu-01", "lab-gpu-02", "lab-gpu-07", "login"]
    assert compress(names) == "login,lab-gpu-[01-03,07]"
    assert compress(["n1"]) == "n1"


def test_expand_reverses_compress() -> None:
    names = ["lab-gpu-01", "lab-gpu-02", "lab-gpu-03", "lab-gpu-07", "login", "n9"]
    assert sorted(expand(compress(names))) == sorted(names)
    assert expand("gpu-[01-03,07],login") == ["gpu-01", "gpu-02", "gpu-03", "gpu-07", "login"]


def test_expand_multiplies_bracket_groups_and_drops_duplicates() -> None:
    assert expand("r[1-2]n[1-2]") == ["r1n1", "r1n2", "r2n1", "r2n2"]
    assert expand("a1,a[1-2]") == ["a1", "a2"]


@pytest.mark.parametrize("bad", ["n[1-", "n]1", "n[a-b]", "n[5-1]", "n[0-999999]"])
def test_expand_rejects_malformed_lists(bad: str) -> None:
    with pytest.raises(ValueError):
        expand(bad)
