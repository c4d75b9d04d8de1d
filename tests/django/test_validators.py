"""Registration numbers: the check digit, the reasons given, and the reply parser."""

from __future__ import annotations

import pytest
from checks.validators import crn_problem, split_numbers, validate_crn
from django.core.exceptions import ValidationError

from celeriac.demo.hometax import HometaxReplyError, parse_reply, query_xml
from celeriac.demo.standin import expected_status, generate_numbers, reply_xml

# 1208801280 in full-width digits: str.isdigit() says yes, but they are not ASCII.
FULLWIDTH_SAMPLE = "".join(chr(0xFF10 + int(d)) for d in "1208801280")


@pytest.mark.parametrize("number", ["1208801280", "3898602190", "2208162517", "120-88-01280"])
def test_article_samples_are_valid(number: str) -> None:
    assert crn_problem(number) is None
    validate_crn(number)


@pytest.mark.parametrize(("number", "reason"), [
    ("213", "must have 10 digits, has 3"),
    ("2143", "must have 10 digits, has 4"),
    ("1208801281", "check digit is 1, expected 0"),
    ("12O8801280", "must be digits (hyphens allowed)"),
    (FULLWIDTH_SAMPLE, "must be digits (hyphens allowed)"),
    ("  ", "empty"),
])
def test_invalid_numbers_say_why(number: str, reason: str) -> None:
    assert crn_problem(number) == reason
    with pytest.raises(ValidationError, match="not a business registration number"):
        validate_crn(number)


def test_split_keeps_order_normalises_and_drops_duplicates() -> None:
    valid, invalid = split_numbers(["3898602190", "213", "120-88-01280", "1208801280", "2143"])
    assert valid == ["3898602190", "1208801280"]
    assert [entry["number"] for entry in invalid] == ["213", "2143"]


def test_every_generated_number_is_valid() -> None:
    assert all(crn_problem(n) is None for n in generate_numbers(500, seed=3))


def test_reply_parser_reads_every_status_of_the_stand_in() -> None:
    seen = set()
    for number in generate_numbers(100, seed=1):
        status, message = parse_reply(reply_xml(number))
        assert status == expected_status(number)
        assert message
        seen.add(status)
    assert seen == {"active", "suspended", "closed", "unregistered"}


def test_reply_with_a_doctype_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE map [<!ENTITY a "aaaaaaaaaa">]><map id="x"><trtCntn>&a;</trtCntn></map>'
    with pytest.raises(HometaxReplyError, match="DOCTYPE"):
        parse_reply(bomb)
    external = b'<!DOCTYPE map SYSTEM "file:///etc/passwd"><map/>'
    with pytest.raises(HometaxReplyError, match="DOCTYPE"):
        parse_reply(external)


def test_query_refuses_markup() -> None:
    assert "<txprDscmNo>1208801280</txprDscmNo>" in query_xml("1208801280")
    with pytest.raises(ValueError, match="not a registration number"):
        query_xml("1</txprDscmNo><x>")
