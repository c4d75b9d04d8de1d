"""The ``pytest11`` entry point ``celeriac``: loads ``celeriac.contrib.pytest`` only when asked.

Installed with celeriac, so pytest loads it in every project; it adds one ini option and
nothing else unless ``celeriac_fixtures = true`` is set (in ``pytest.ini``, ``tox.ini``,
``setup.cfg`` or ``[tool.pytest.ini_options]``). Celery's fixtures are off by default for
the same reason: a project that has both Celery and celeriac installed would get two
plugins defining ``celery_app``. ``-p celeriac.contrib.pytest`` or ``pytest_plugins``
load the fixtures directly, without this option; ``-p no:celeriac`` removes this module.
"""

from __future__ import annotations

import pytest

FIXTURES = "celeriac.contrib.pytest"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("celeriac_fixtures", type="bool", default=False,
                  help="load celeriac's Celery-named fixtures (celery_app, celery_worker, ...)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getini("celeriac_fixtures") and not config.pluginmanager.has_plugin(FIXTURES):
        config.pluginmanager.import_plugin(FIXTURES)
