"""Korean business registration numbers (사업자등록번호): the official check digit.

A number is ten digits; the tenth is a check digit over the first nine with weights
1,3,7,1,3,7,1,3,5, where the ninth digit's weighted value (d9 * 5) also adds its tens
digit. Hyphens (``120-88-01280``) are accepted and ignored.
"""

from __future__ import annotations

WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3, 5)


def normalize(number: str) -> str:
    """The number without hyphens or surrounding spaces."""
    return number.strip().replace("-", "")


def check_digit(first_nine: str) -> int:
    """The tenth digit that makes ``first_nine`` a valid number."""
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise ValueError(f"expected the first 9 digits of a registration number, got {first_nine!r}")
    digits = [int(c) for c in first_nine]
    total = sum(d * w for d, w in zip(digits, WEIGHTS, strict=True))
    total += digits[8] * 5 // 10
    return (10 - total % 10) % 10


def is_valid(number: str) -> bool:
    """True for ten ASCII digits whose last one is the check digit."""
    number = normalize(number)
    if len(number) != 10 or not number.isascii() or not number.isdigit():
        return False
    return check_digit(number[:9]) == int(number[9])


def with_check_digit(first_nine: str) -> str:
    """``first_nine`` completed to a valid ten-digit number."""
    return f"{first_nine}{check_digit(first_nine)}"
