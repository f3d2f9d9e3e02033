"""The domain's stock rules, without a database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stockhub.domain.money import to_decimal_string
from stockhub.domain.stock import StockLevel, StockStatus, available


def test_available_is_on_hand_less_committed_and_safety_stock():
    assert available(10, 2) == 8
    assert available(10, 2, safety_stock=3) == 5
    assert StockLevel(on_hand=10, committed=2).status is StockStatus.IN_STOCK


def test_available_never_goes_below_zero_and_negative_counts_are_out_of_stock():
    assert available(2, 5) == 0
    assert available(-3, 0) == 0
    assert StockLevel(on_hand=-3).status is StockStatus.OUT_OF_STOCK
    assert StockLevel(on_hand=0).status is StockStatus.OUT_OF_STOCK


def test_expired_stock_sells_nothing():
    level = StockLevel(on_hand=10, expired=True)
    assert level.available == 0 and level.status is StockStatus.EXPIRED


@given(st.integers(-1000, 1000), st.integers(0, 1000), st.integers(0, 100))
def test_available_is_floored_and_never_exceeds_on_hand(on_hand, committed, safety):
    value = available(on_hand, committed, safety)
    assert 0 <= value <= max(on_hand, 0)


def test_money_is_rendered_in_the_currencys_own_digits():
    assert to_decimal_string(699, "GBP") == "6.99"
    assert to_decimal_string(2000, "EUR") == "20.00"
    assert to_decimal_string(500, "JPY") == "500"
    assert to_decimal_string(1234, "KWD") == "1.234"
    assert to_decimal_string(None, "GBP") is None
