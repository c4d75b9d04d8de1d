"""The Hometax stand-in: its truth table, its XML, its failures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from celeriac.demo import standin
from celeriac.demo.crn import is_valid
from celeriac.demo.hometax import parse_reply, query_xml
from celeriac.demo.standin import (
    ARTICLE_NUMBERS,
    HometaxStandIn,
    StandIn,
    count_statuses,
    expected_status,
    generate_numbers,
    number_from_query,
    reply_xml,
)


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    with StandIn(delay_s=0.0) as running:
        yield running


def post(url: str, body: str | bytes, action: str = "ATTABZAA001R08") -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(url, params={"actionId": action}, content=content, timeout=10)


# --- truth table -------------------------------------------------------------------


def test_article_numbers_are_active() -> None:
    assert [expected_status(n) for n in ARTICLE_NUMBERS] == ["active"] * 3


def test_truth_table_is_pinned() -> None:
    # Pinned values: a change to the hash rule must show up here, not as drifting demo counts.
    assert {n: expected_status(n) for n in ("9654039585", "8779334881", "9192626742", "6068682876")} == {
        "9654039585": "closed", "8779334881": "active", "9192626742": "suspended",
        "6068682876": "unregistered",
    }
    assert expected_status("213") == "unregistered"
    assert expected_status("1208801281") == "unregistered"  # wrong check digit


def test_generated_numbers_are_valid_distinct_and_mixed() -> None:
    numbers = generate_numbers(1000, seed=0)
    assert numbers[:3] == list(ARTICLE_NUMBERS)
    assert len(set(numbers)) == 1000
    assert all(is_valid(n) for n in numbers)
    assert count_statuses(numbers) == {"active": 700, "suspended": 50, "closed": 200, "unregistered": 50}
    assert generate_numbers(1000, seed=0) == numbers
    assert generate_numbers(50, seed=1) != generate_numbers(50, seed=2)


def test_small_runs_still_show_every_status() -> None:
    assert all(count > 0 for count in count_statuses(generate_numbers(7)).values())


# --- replies -----------------------------------------------------------------------


@pytest.mark.parametrize("number", ["1208801280", "9654039585", "9192626742", "6068682876", "213"])
def test_reply_parses_back_to_the_truth_table(number: str) -> None:
    status, message = parse_reply(reply_xml(number))
    assert status == expected_status(number)
    assert message


def test_reply_messages_read_like_the_real_service() -> None:
    active = reply_xml("1208801280").decode()
    assert "<smpcBmanTrtCntn>등록되어 있는 사업자등록번호 입니다. </smpcBmanTrtCntn>" in active
    closed = reply_xml("9654039585").decode()
    assert "<trtCntn>폐업자 (과세유형: 부가가치세" in closed and "폐업일자:" in closed
    assert "<trtCntn>휴업자 (과세유형: " in reply_xml("9192626742").decode()
    assert "국세청에 등록되지 않은 사업자등록번호입니다." in reply_xml("6068682876").decode()


def test_query_parsing_refuses_doctype_and_foreign_xml() -> None:
    assert number_from_query(query_xml("1208801280").encode()) == "1208801280"
    with pytest.raises(ValueError, match="DOCTYPE"):
        number_from_query(b'<!DOCTYPE map [<!ENTITY x "y">]><map id="ATTABZAA001R08"/>')
    with pytest.raises(ValueError, match="expected <map"):
        number_from_query(b"<other/>")
    with pytest.raises(ValueError, match="txprDscmNo"):
        number_from_query(b'<map id="ATTABZAA001R08"/>')


# --- over HTTP ---------------------------------------------------------------------


def test_answers_the_articles_query_over_http(server: StandIn) -> None:
    response = post(server.url, query_xml("1208801280"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert parse_reply(response.content) == ("active", "등록되어 있는 사업자등록번호 입니다.")


def test_answers_the_articles_exact_payload(server: StandIn) -> None:
    payload = """
        <map id="ATTABZAA001R08">
            <pubcUserNo/>
            <mobYn>N</mobYn>
            <inqrTrgtClCd>1</inqrTrgtClCd>
            <txprDscmNo>2143</txprDscmNo>
            <dongCode>88</dongCode>
            <psbSearch>Y</psbSearch>
            <map id="userReqInfoVO"/>
        </map>
    """
    response = post(server.url, payload)
    assert parse_reply(response.content)[0] == "unregistered"


def test_refuses_what_is_not_the_query(server: StandIn) -> None:
    assert post(server.url, query_xml("1208801280"), action="OTHER").status_code == 400
    assert post(server.url, b"<!DOCTYPE x><map/>").status_code == 400
    assert httpx.get(server.url, params={"actionId": "ATTABZAA001R08"}).status_code == 405
    assert httpx.post(server.url.replace("/wqAction.do", "/elsewhere")).status_code == 404


def test_seeded_failures_repeat_per_number_and_attempt() -> None:
    first = HometaxStandIn(failure_rate=0.5, seed=7)
    second = HometaxStandIn(failure_rate=0.5, seed=7)
    numbers = generate_numbers(20)
    pattern = [[first.should_fail(n) for _ in range(4)] for n in numbers]
    # The same attempts in another order give the same answers.
    replay = {n: [second.should_fail(n) for _ in range(4)] for n in reversed(numbers)}
    assert pattern == [replay[n] for n in numbers]
    assert any(any(row) for row in pattern) and not all(all(row) for row in pattern)


def test_failures_in_a_row_are_bounded() -> None:
    app = HometaxStandIn(failure_rate=1.0, seed=1, max_failures_in_a_row=3)
    assert [app.should_fail("1208801280") for _ in range(8)] == [True, True, True, False] * 2


def test_injects_503s_over_http() -> None:
    with StandIn(delay_s=0.0, failure_rate=1.0, seed=3, max_failures_in_a_row=2) as failing:
        codes = [post(failing.url, query_xml("1208801280")).status_code for _ in range(3)]
        assert codes == [503, 503, 200]
        assert failing.app.failures_injected == 2
        assert failing.app.requests_served == 3


def test_runs_as_a_module() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "celeriac.demo.standin", "--port", "0", "--delay-ms", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = banner.split(" at ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith(standin.PATH)
        assert parse_reply(post(url, query_xml("3898602190")).content)[0] == "active"
    finally:
        process.terminate()
        process.wait(timeout=10)
