from __future__ import annotations

from metalfleet.scheduling.hostlist import compress, ranges


def test_ranges() -> None:
    assert ranges([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert ranges([3]) == "3"


def test_compress_keeps_zero_padding_and_plain_names() -> None:
    names = ["lab-gpu-03", "lab-gpu-01", "lab-gpu-02", "lab-gpu-07", "login"]
    assert compress(names) == "login,lab-gpu-[01-03,07]"
    assert compress(["n1"]) == "n1"
