"""``manage.py celeriac ...`` forwards to celeriac's command line with the project's app."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from celeriac import Celery
from celeriac.contrib.django.discovery import load_project_app, project_app_path
from celeriac.contrib.django.management.commands.celeriac import names_app, strip_django_options

from . import djtasks


def test_the_project_app_is_found_and_loaded(app: Celery) -> None:
    assert project_app_path() == "crn_check.celery:app"
    assert load_project_app() is app
    # The AppConfig imported it and autodiscovery registered the example's task.
    assert app.get_task("checks.tasks.check_registration_number").is_async


@pytest.mark.parametrize(("args", "expected"), [
    (["worker", "-c", "4"], False),
    (["-A", "proj", "worker"], True),
    (["--app=proj", "worker"], True),
    (["-Aproj", "worker"], True),
    (["-b", "memory://", "worker", "-A", "x"], False),  # after the sub-command: the worker's own
])
def test_names_app(args: list[str], expected: bool) -> None:
    assert names_app(args) is expected


def test_django_global_options_are_dropped() -> None:
    assert strip_django_options(["worker", "--settings", "a.b", "-c", "4", "--pythonpath=/x"]) == [
        "worker", "-c", "4"]


def test_call_command_runs_a_celeriac_command(broker_url: str, app: Celery, capsys: pytest.CaptureFixture[str]) -> None:
    djtasks.add.enqueue(1, 2)
    call_command("celeriac", "queues", "--json")
    assert json.loads(capsys.readouterr().out) == {"celery": 1}


def test_a_failing_celeriac_command_is_a_command_error(broker_url: str) -> None:
    with pytest.raises(CommandError, match="exited with code 2"):
        call_command("celeriac", "no-such-command")
