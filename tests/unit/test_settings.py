"""``app.settings``: ``app.conf`` converted and checked once; unknown names warned about once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.config import DEFAULTS, IGNORED, OLD_NAMES, ResolvedSettings, resolve
from celeriac.exceptions import ConfigurationError

CONFIG_LOGGER = "celeriac.config"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CONFIG_LOGGER and r.levelno >= logging.WARNING]


def test_every_setting_has_a_typed_field() -> None:
    fields = {f.name for f in dataclasses.fields(ResolvedSettings)}
    assert fields == {*DEFAULTS, "tz"}
    assert not set(IGNORED) & set(DEFAULTS)


def test_defaults_resolve() -> None:
    resolved = resolve({})
    assert resolved.result_expires == 86400.0 and resolved.broker_lease_seconds == 60.0
    assert resolved.accept_content == ("json",) and resolved.include == () and resolved.imports == ()
    assert resolved.worker_concurrency == 100 and resolved.tz is dt.UTC
    assert resolved.task_default_rate_limit is None and resolved.task_time_limit is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.worker_concurrency = 3  # type: ignore[misc]


@pytest.mark.parametrize(("value", "seconds"), [
    (dt.timedelta(hours=2), 7200.0),
    (3600, 3600.0),
    (1.5, 1.5),
    ("60", 60.0),
    (0, 0.0),
    (None, None),
])
def test_result_expires_in_seconds(value: Any, seconds: float | None) -> None:
    assert resolve({"result_expires": value}).result_expires == seconds


def test_conversions() -> None:
    resolved = resolve({
        "worker_concurrency": "8", "broker_max_deliveries": 3.0, "worker_heartbeat_seconds": 0.5,
        "broker_lease_seconds": dt.timedelta(minutes=2), "task_always_eager": "true", "task_acks_late": 0,
        "accept_content": ["json", "pickle"], "include": "proj.tasks", "imports": {"a.tasks"},
        "task_time_limit": 30, "task_soft_time_limit": 0, "task_default_rate_limit": "120/m",
        "timezone": "Asia/Seoul", "worker_concurrency_unknown": "ignored", "task_default_priority": "9",
    })
    assert resolved.worker_concurrency == 8 and resolved.broker_max_deliveries == 3
    assert resolved.worker_heartbeat_seconds == 0.5 and resolved.broker_lease_seconds == 120.0
    assert resolved.task_always_eager is True and resolved.task_acks_late is False
    assert resolved.accept_content == ("json", "pickle")
    assert resolved.include == ("proj.tasks",) and resolved.imports == ("a.tasks",)
    assert resolved.task_time_limit == 30.0 and resolved.task_soft_time_limit is None
    assert resolved.task_default_rate_limit == 2.0 and resolved.task_default_priority == 9
    assert str(resolved.tz) == "Asia/Seoul"


def test_none_or_zero_take_the_default_and_none_counts_as_false_for_switches() -> None:
    zero = resolve({"broker_lease_seconds": 0, "beat_max_loop_interval": 0, "beat_missed_after_seconds": 0})
    assert (zero.broker_lease_seconds, zero.beat_max_loop_interval, zero.beat_missed_after_seconds) == (60, 5, 5)
    resolved = resolve({"worker_concurrency": None, "broker_lease_seconds": None, "task_default_queue": None,
                        "worker_send_task_events": None, "beat_schedule": None})
    assert resolved.worker_concurrency == 100 and resolved.broker_lease_seconds == 60.0
    assert resolved.task_default_queue == "celery" and resolved.worker_send_task_events is False
    assert resolved.beat_schedule == {}


def test_dicts_and_routes_are_the_objects_set() -> None:
    schedule: dict[str, Any] = {}

    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> None:
        return None

    resolved = resolve({"beat_schedule": schedule, "task_routes": router})
    schedule["late"] = {"task": "t", "schedule": 1.0}
    assert resolved.beat_schedule is schedule and resolved.task_routes is router


def test_broker_url_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "memory://from-env")
    assert resolve({}).broker_url == "memory://from-env"
    assert resolve({"broker_url": "memory://set"}).broker_url == "memory://set"
    monkeypatch.delenv("CELERIAC_BROKER_URL")
    assert resolve({"broker_url": ""}).broker_url == "sqlite:///celeriac.db"


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("worker_concurrency", "abc", "worker_concurrency must be a positive integer, got 'abc'"),
    ("worker_concurrency", 0, "worker_concurrency must be a positive integer, got 0"),
    ("worker_concurrency", True, "worker_concurrency must be a positive integer, got True"),
    ("worker_concurrency", 2.5, "worker_concurrency must be a positive integer, got 2.5"),
    ("worker_prefetch_multiplier", -1, "worker_prefetch_multiplier must be an integer, 0 or more, got -1"),
    ("task_default_priority", 10, "task_default_priority must be an integer from 0 to 9, got 10"),
    ("broker_lease_seconds", -1, "broker_lease_seconds must be a positive number of seconds, got -1"),
    ("revoked_ttl_seconds", 0, "revoked_ttl_seconds must be a positive number of seconds, got 0"),
    ("broker_lease_seconds", "soon", "broker_lease_seconds must be a positive number of seconds, got 'soon'"),
    ("worker_heartbeat_seconds", float("nan"), "worker_heartbeat_seconds must be a positive number"),
    ("result_expires", -5, "result_expires must be a number of seconds, 0 or more or None, got -5"),
    ("result_expires", "a day", "result_expires must be"),
    ("task_time_limit", -1, "task_time_limit must be a positive number of seconds or None, got -1"),
    ("task_always_eager", "maybe", "task_always_eager must be True or False, got 'maybe'"),
    ("task_always_eager", [True], "task_always_eager must be True or False"),
    ("task_serializer", "yaml", "task_serializer must be 'json' or 'pickle', got 'yaml'"),
    ("accept_content", ["json", 1], "accept_content must be a list of strings"),
    ("task_default_queue", "", "task_default_queue must be a non-empty string, got ''"),
    ("beat_schedule", [1], "beat_schedule must be a dict of entry name -> entry, got [1]"),
    ("beat_missed", "later", "beat_missed must be 'run_once' or 'skip', got 'later'"),
    ("beat_overlap", "never", "beat_overlap must be 'allow' or 'skip', got 'never'"),
    ("task_default_rate_limit", "ten per second", "task_default_rate_limit must be a rate such as '10/s'"),
    ("task_default_rate_limit", -3, "task_default_rate_limit must be a rate"),
    ("broker_url", 6379, "broker_url must be a URL string, got 6379"),
    ("broker_transport_options", "x", "broker_transport_options must be a dict of transport options"),
    ("timezone", "Nowhere/Land", "timezone 'Nowhere/Land' is unknown"),
    ("timezone", 9, "timezone must be an IANA zone name"),
])
def test_validation_names_the_setting(setting: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve({setting: value})
    assert str(caught.value).startswith(message), str(caught.value)


def test_app_settings_is_cached_and_sees_every_write() -> None:
    app = Celery("settings-cache", broker="memory://settings-cache")
    first = app.settings
    assert app.settings is first  # resolved once
    app.conf.update(worker_concurrency=7, result_expires=dt.timedelta(minutes=1))
    assert app.settings.worker_concurrency == 7 and app.settings.result_expires == 60.0
    app.conf.task_always_eager = True
    assert app.settings.task_always_eager is True
    app.conf["task_default_queue"] = "other"
    assert app.settings.task_default_queue == "other"
    del app.conf["task_default_queue"]  # a missing key takes its default
    assert app.settings.task_default_queue == "celery"
    app.conf.setdefault("task_default_priority", 5)  # present: no change
    app.conf.setdefault("task_default_queue", "again")
    assert app.settings.task_default_priority == 0 and app.settings.task_default_queue == "again"
    # What users set is what app.conf gives back.
    assert app.conf.result_expires == dt.timedelta(minutes=1) and app.conf.worker_concurrency == 7


def test_config_from_object_after_a_resolve_is_seen() -> None:
    app = Celery("settings-late", broker="memory://settings-late")
    assert app.settings.worker_concurrency == 100
    app.config_from_object(types.SimpleNamespace(worker_concurrency=12))
    assert app.settings.worker_concurrency == 12
    assert app.settings.broker_url == "memory://settings-late"  # the constructor's keywords still win


def test_an_invalid_setting_fails_where_settings_are_read() -> None:
    app = Celery("settings-bad", broker="memory://settings-bad", worker_concurrency="lots")
    assert app.conf.worker_concurrency == "lots"  # app.conf holds what was set
    with pytest.raises(ConfigurationError, match="worker_concurrency must be a positive integer, got 'lots'"):
        _ = app.settings
    app.conf.worker_concurrency = "16"
    assert app.settings.worker_concurrency == 16


def test_a_misspelled_setting_is_warned_about_once_with_the_nearest_name(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    app = Celery("settings-typo", broker="memory://settings-typo")
    app.conf.broker_ulr = "redis://localhost"
    app.conf.broker_ulr = "redis://elsewhere"
    app.conf.update(broker_ulr="redis://again")
    assert warnings_of(caplog) == [
        "unknown setting 'broker_ulr'; did you mean 'broker_url'? (celeriac does not read it)"]
    assert app.conf.broker_ulr == "redis://again"  # still set: warned about, not refused
    assert app.settings.broker_url == "memory://settings-typo"


def test_typos_in_the_constructor_and_without_a_close_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    Celery("settings-kw", broker="memory://settings-kw", worker_concurency=4, my_own_setting=1)
    assert warnings_of(caplog) == [
        "unknown setting 'worker_concurency'; did you mean 'worker_concurrency'? (celeriac does not read it)",
        "unknown setting 'my_own_setting' (celeriac does not read it)",
    ]


def test_a_typo_under_the_namespace_is_named_as_written(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    source = types.SimpleNamespace(CELERY_BROKER_ULR="redis://x", CELERY_BROKER_URL="memory://ns-typo")
    app = Celery("settings-ns-typo")
    app.config_from_object(source, namespace="CELERY")
    assert app.settings.broker_url == "memory://ns-typo"
    _ = app.conf  # read again: no second warning
    assert warnings_of(caplog) == [
        "unknown setting 'CELERY_BROKER_ULR'; did you mean 'CELERY_BROKER_URL'? (celeriac does not read it)"]


def test_django_style_settings_warn_only_about_their_celery_names(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)

    class DjangoSettings:
        DEBUG = True
        SECRET_KEY = "x"
        INSTALLED_APPS = ["django.contrib.admin"]
        DATABASES: dict[str, Any] = {"default": {}}
        BROKER_BACKEND = "unrelated"
        CACHE_BACKEND = "unrelated"
        CELERYX_NOT_OURS = 1
        CELERY_BROKER_URL = "memory://django-style"
        CELERY_RESULT_EXPIRES = dt.timedelta(hours=1)
        CELERY_TASK_ALWAYS_EAGER = True
        CELERY_WORKER_MAX_TASKS_PER_CHILD = 100  # read by -P prefork
        CELERY_WORKER_POOL_RESTARTS = True  # a Celery setting celeriac ignores: info, not a warning
        CELERYD_CONCURRENCY = 3  # an old name

        def is_overridden(self, setting: str) -> bool:
            return False

        @property
        def configured(self) -> bool:
            return True

    app = Celery("settings-django")
    app.config_from_object(DjangoSettings(), namespace="CELERY")
    resolved = app.settings
    assert resolved.broker_url == "memory://django-style" and resolved.result_expires == 3600.0
    assert resolved.task_always_eager is True and resolved.worker_concurrency == 3
    assert resolved.worker_max_tasks_per_child == 100
    assert warnings_of(caplog) == []
    ignored = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(ignored) == 1 and ignored[0].startswith(
        "celeriac ignores the setting CELERY_WORKER_POOL_RESTARTS: ")


def test_a_config_module_without_namespace_warns_only_about_setting_like_names(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    module = types.ModuleType("celeryconfig")
    module.os = __import__("os")  # type: ignore[attr-defined]  # a config module's imports
    module.timedelta = dt.timedelta  # type: ignore[attr-defined]
    module.helper = lambda: None  # type: ignore[attr-defined]
    module.broker_url = "memory://module"  # type: ignore[attr-defined]
    module.task_acks_lat = False  # type: ignore[attr-defined]
    module.CELERY_SOMETHING = 1  # type: ignore[attr-defined]  # upper case: not read without a namespace
    app = Celery("settings-module")
    app.config_from_object(module)
    assert app.settings.broker_url == "memory://module"
    assert warnings_of(caplog) == [
        "unknown setting 'task_acks_lat'; did you mean 'task_acks_late'? (celeriac does not read it)"]


def test_old_names_in_config_from_object(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    source = {name: value for name, value in [
        ("BROKER_URL", "memory://old"), ("CELERY_ALWAYS_EAGER", True), ("CELERY_TASK_RESULT_EXPIRES", 120),
        ("CELERYD_CONCURRENCY", "5"), ("CELERY_ACCEPT_CONTENT", ["json"]), ("CELERY_TIMEZONE", "Europe/Berlin"),
    ]}
    assert set(source) <= set(OLD_NAMES)
    app = Celery("settings-old")
    app.config_from_object(source)
    resolved = app.settings
    assert (resolved.broker_url, resolved.task_always_eager, resolved.result_expires) == ("memory://old", True, 120.0)
    assert resolved.worker_concurrency == 5 and str(resolved.tz) == "Europe/Berlin"
    assert warnings_of(caplog) == []


def test_an_old_name_set_on_conf_points_to_the_new_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    app = Celery("settings-old-direct", broker="memory://settings-old-direct")
    app.conf.CELERY_ALWAYS_EAGER = True
    assert len(warnings_of(caplog)) == 1 and "'task_always_eager'" in warnings_of(caplog)[0]


def test_an_ignored_celery_setting_is_logged_at_info_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    app = Celery("settings-ignored", broker="memory://settings-ignored", broker_pool_limit=10)
    app.conf.broker_pool_limit = 20
    app.conf.task_create_missing_queues = True
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == CONFIG_LOGGER]
    assert [level for level, _ in messages] == [logging.INFO, logging.INFO]
    assert messages[0][1].startswith("celeriac ignores the setting broker_pool_limit: ")
    assert messages[1][1].startswith("celeriac ignores the setting task_create_missing_queues: ")
    assert app.conf.broker_pool_limit == 20


def test_copies_keep_the_settings_and_do_not_warn_again(caplog: pytest.LogCaptureFixture) -> None:
    import copy
    import pickle

    caplog.set_level(logging.INFO, logger=CONFIG_LOGGER)
    app = Celery("settings-copy", broker="memory://settings-copy", broker_ulr="x")
    for other in (copy.copy(app.conf), copy.deepcopy(app.conf), pickle.loads(pickle.dumps(app.conf))):
        assert other == app.conf and type(other) is type(app.conf)
        assert other.resolved().broker_url == "memory://settings-copy"
    assert len(warnings_of(caplog)) == 1


def test_each_app_has_its_own_mutable_defaults() -> None:
    one = Celery("settings-one", broker="memory://settings-one")
    two = Celery("settings-two", broker="memory://settings-two")
    one.conf.beat_schedule["tick"] = {"task": "t", "schedule": 1.0}
    assert two.conf.beat_schedule == {} and DEFAULTS["beat_schedule"] == {}


# --- the resolver never fails with anything but ConfigurationError -------------------------

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=8)
    | st.timedeltas() | st.sampled_from(["json", "pickle", "10/s", "UTC", "Asia/Seoul", "skip", "run_once",
                                         "allow", "1e400", "-0", "nan", "inf", "memory://", "0/s", "5/x"]),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=3),
    max_leaves=5,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(DEFAULTS)), junk, max_size=8))
def test_resolve_returns_settings_or_raises_configuration_error(conf: dict[str, Any]) -> None:
    try:
        resolved = resolve(conf)
    except ConfigurationError as exc:
        assert str(exc)
        assert any(name in str(exc) for name in conf)  # names the setting
    else:
        assert isinstance(resolved, ResolvedSettings)
        for name in ("broker_lease_seconds", "revoked_ttl_seconds", "worker_heartbeat_seconds"):
            value = getattr(resolved, name)
            assert isinstance(value, float) and value > 0
        assert isinstance(resolved.worker_concurrency, int) and resolved.worker_concurrency >= 1
        assert resolved.result_expires is None or resolved.result_expires >= 0
        assert all(isinstance(item, str) for item in resolved.accept_content)
