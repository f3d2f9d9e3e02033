import pytest

from stockhub.feeds import currency_exponent, is_currency


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("GBP", 2), ("EUR", 2), ("KWD", 3), ("usd", 2)])
def test_currency_exponent(code, exponent):
    assert currency_exponent(code) == exponent


def test_unknown_currency_has_no_exponent():
    with pytest.raises(ValueError):
        currency_exponent("XYZ")


def test_is_currency():
    assert is_currency("GBP") and is_currency("gbp")
    assert not is_currency("XYZ") and not is_currency("") and not is_currency("GB")
