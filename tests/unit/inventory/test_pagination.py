import pytest

from metalfleet.core.errors import ValidationError
from metalfleet.inventory.pagination import check_limit, decode_cursor, encode_cursor, split_page


def test_cursor_round_trip_and_rejects_garbage() -> None:
    for name in ["node-00001", "ü-node", "a" * 63]:
        assert decode_cursor(encode_cursor(name)) == name
    for bad in ["%%%", "bm9kZQ", ""]:
        with pytest.raises(ValidationError):
            decode_cursor(bad)


def test_split_page_says_where_to_continue() -> None:
    rows, nxt = split_page(["a", "b", "c"], 2, lambda r: r)
    assert rows == ["a", "b"] and nxt is not None and decode_cursor(nxt) == "b"
    assert split_page(["a"], 2, lambda r: r) == (["a"], None)


def test_limit_bounds() -> None:
    assert check_limit(1000) == 1000
    with pytest.raises(ValidationError):
        check_limit(0)
