"""Business registration numbers (사업자등록번호): ten digits, the last a check digit.

The check digit is celeriac's (``celeriac.demo.crn``): weights 1,3,7,1,3,7,1,3,5 over the
first nine digits, plus the tens digit of the ninth digit times five. Hyphens, as in
``120-88-01280``, are accepted and dropped.
"""

from django.core.exceptions import ValidationError

from celeriac.demo.crn import check_digit, normalize


def crn_problem(raw: str) -> str | None:
    """Why ``raw`` is not a registration number, or None when it is one."""
    number = normalize(raw)
    if not number:
        return "empty"
    if not (number.isascii() and number.isdigit()):
        return "must be digits (hyphens allowed)"
    if len(number) != 10:
        return f"must have 10 digits, has {len(number)}"
    expected = check_digit(number[:9])
    if int(number[9]) != expected:
        return f"check digit is {number[9]}, expected {expected}"
    return None


def validate_crn(value: str) -> None:
    """A model and serializer validator."""
    problem = crn_problem(value)
    if problem is not None:
        raise ValidationError(f"{value!r} is not a business registration number: {problem}", code="invalid_crn")


def split_numbers(raw_numbers: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """``(valid, invalid)``: valid numbers normalised, once each in first-seen order;
    invalid ones as ``{"number", "reason"}``."""
    valid: list[str] = []
    invalid: list[dict[str, str]] = []
    seen: set[str] = set()
    for raw in raw_numbers:
        problem = crn_problem(raw)
        if problem is not None:
            invalid.append({"number": raw, "reason": problem})
            continue
        number = normalize(raw)
        if number not in seen:
            seen.add(number)
            valid.append(number)
    return valid, invalid
