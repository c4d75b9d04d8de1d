"""The one back-off every retrying loop keeps: doubling pauses, capped, two log lines per outage."""

from __future__ import annotations

import logging

import pytest

from celeriac.backoff import JITTER, Backoff, describe

log = logging.getLogger("celeriac.test.backoff")


def test_pauses_double_up_to_the_cap_with_bounded_jitter() -> None:
    backoff = Backoff(log, "cannot reach it", "reached it", base_s=0.1, cap_s=1.0)
    pauses = [backoff.failed(OSError("refused")) for _ in range(8)]
    expected = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for pause, floor in zip(pauses, expected, strict=True):
        assert floor <= pause <= floor * (1 + JITTER)


def test_an_outage_is_logged_when_it_starts_and_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    backoff = Backoff(log, "cannot reach it", "reached it again", base_s=0.1, cap_s=1.0, hint="Nothing is lost.")
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(50):
            backoff.failed(ConnectionError("refused"))
        backoff.succeeded()
        backoff.succeeded()  # no outage, nothing to say
    assert [r.getMessage() for r in caplog.records] == [
        "cannot reach it (ConnectionError: refused); retrying with back-off up to 1.0s. Nothing is lost.",
        "reached it again after 50 failed attempts",
    ]
    assert backoff.failures == 0
    assert backoff.failed(ConnectionError()) <= 0.1 * (1 + JITTER)  # a new outage starts from the base


def test_huge_failure_counts_do_not_overflow() -> None:
    backoff = Backoff(log, "x", "y", base_s=0.5, cap_s=30.0)
    backoff.failures = 10_000
    assert 30.0 <= backoff.failed(OSError()) <= 30.0 * (1 + JITTER)


def test_describe_names_the_type_and_the_message() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(OSError("no route")) == "OSError: no route"
