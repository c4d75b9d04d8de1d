"""The registration-number check digit."""

from __future__ import annotations

import pytest

from celeriac.demo.crn import check_digit, is_valid, normalize, with_check_digit


@pytest.mark.parametrize("number", ["1208801280", "3898602190", "2208162517", "120-88-01280"])
def test_article_samples_are_valid(number: str) -> None:
    assert is_valid(number)


FULLWIDTH = "".join(chr(0xFF10 + int(d)) for d in "1208801280")  # isdigit() is true for these


@pytest.mark.parametrize("number", ["213", "2143", "4535", "23415457463", "1208801281", "12088O1280", "", FULLWIDTH])
def test_malformed_or_wrong_check_digit_is_invalid(number: str) -> None:
    assert not is_valid(number)


def test_ninth_digit_counts_its_tens() -> None:
    # 1,2,0,8,8,0,1,2,8 weighted: 1+6+0+8+24+0+1+6+40 = 86, plus 8*5//10 = 4 -> 90 -> check 0
    assert check_digit("120880128") == 0
    assert with_check_digit("120880128") == "1208801280"


def test_check_digit_needs_nine_digits() -> None:
    with pytest.raises(ValueError, match="first 9 digits"):
        check_digit("12345678")


def test_normalize_drops_hyphens_and_spaces() -> None:
    assert normalize(" 120-88-01280 ") == "1208801280"
