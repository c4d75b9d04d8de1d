"""The check task, run by a real in-process worker against the stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.demo import tasks
from celeriac.demo.hometax import HometaxReplyError, parse_reply, query_xml
from celeriac.demo.standin import StandIn, expected_status, generate_numbers, reply_xml
from celeriac.message import SUCCESS
from celeriac.worker import Worker


@pytest.fixture
def flaky_standin() -> Iterator[StandIn]:
    # Half the answers are 503s, at most 3 in a row per number: below max_retries=5, so
    # every check must end with the truth table's answer, after retries.
    with StandIn(delay_s=0.01, failure_rate=0.5, seed=11, max_failures_in_a_row=3) as running:
        yield running


@pytest.fixture
def demo_app(tmp_path: Path, flaky_standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    monkeypatch.setitem(tasks.app.conf, "broker_url", f"sqlite:///{tmp_path}/demo.db")
    monkeypatch.setattr(tasks, "hometax_url", flaky_standin.url)
    # Retries keep their back-off shape, but at most 1s apart, to keep the test short.
    monkeypatch.setattr(tasks.check_registration_number, "retry_backoff_max", 1)
    return flaky_standin


async def test_retries_through_503s_and_ends_with_the_truth(demo_app: StandIn) -> None:
    numbers = generate_numbers(12, seed=5)
    results = [await tasks.check_registration_number.adelay(n) for n in numbers]
    worker = Worker(tasks.app, until_empty=True, handle_signals=False, concurrency=50)
    await worker.run()

    records = await (await tasks.app.result_store()).fetch_many([r.id for r in results])
    try:
        assert demo_app.app.failures_injected > 0
        assert sum(records[r.id].retries for r in results) == demo_app.app.failures_injected
        for result, number in zip(results, numbers, strict=True):
            assert records[result.id].state == SUCCESS
            value = await result.aget(timeout=5)
            assert value["number"] == number
            assert value["status"] == expected_status(number)
    finally:
        await tasks.app.close()


def test_parse_reply_refuses_doctype_and_non_xml() -> None:
    bomb = b'<!DOCTYPE map [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><map><trtCntn>&b;</trtCntn></map>'
    with pytest.raises(HometaxReplyError, match="DOCTYPE"):
        parse_reply(bomb)
    with pytest.raises(HometaxReplyError, match="not XML"):
        parse_reply(b"<html>Service Unavailable")


def test_parse_reply_reports_a_refused_query() -> None:
    refused = (b'<map id="ATTABZAA001R08"><map id="resultMsg"><msg>too many requests</msg></map>'
               b"<trtEndCd>N</trtEndCd></map>")
    with pytest.raises(HometaxReplyError, match="too many requests"):
        parse_reply(refused)


def test_parse_reply_reads_each_status() -> None:
    assert parse_reply(reply_xml("9654039585"))[1].startswith("폐업자 (과세유형:")
    assert parse_reply(reply_xml("9192626742"))[1].startswith("휴업자")


def test_query_refuses_markup_in_the_number() -> None:
    assert "<txprDscmNo>120-88-01280</txprDscmNo>" in query_xml("120-88-01280")
    with pytest.raises(ValueError, match="not a registration number"):
        query_xml("1</txprDscmNo><x>")
