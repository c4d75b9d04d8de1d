"""``delay_on_commit``: sent when the transaction commits, never when it rolls back."""

from __future__ import annotations

import pytest
from checks.tasks import check_registration_number
from django.db import transaction

from celeriac import Celery

from .test_api import queue_depths

pytestmark = pytest.mark.django_db(transaction=True)  # real commits and rollbacks


class Boom(Exception):
    pass


def test_rollback_sends_nothing(broker_url: str, app: Celery) -> None:
    with pytest.raises(Boom), transaction.atomic():
        check_registration_number.delay_on_commit("1208801280")
        check_registration_number.apply_async_on_commit(("3898602190",), queue="slow")
        raise Boom
    assert queue_depths(app) == {}


def test_commit_sends_after_the_block_not_before(broker_url: str, app: Celery) -> None:
    with transaction.atomic():
        check_registration_number.delay_on_commit("1208801280")
        check_registration_number.apply_async_on_commit(("3898602190",), queue="slow")
        assert queue_depths(app) == {}  # nothing yet: a worker must not see it before the commit
    assert queue_depths(app) == {"celery": 1, "slow": 1}


def test_outside_a_transaction_it_sends_at_once(broker_url: str, app: Celery) -> None:
    check_registration_number.delay_on_commit("1208801280")
    assert queue_depths(app) == {"celery": 1}


def test_wrong_arguments_fail_in_the_caller(broker_url: str, app: Celery) -> None:
    with pytest.raises(TypeError, match="wrong arguments"), transaction.atomic():
        check_registration_number.delay_on_commit("1208801280", "extra")
    assert queue_depths(app) == {}
