"""Testing helpers under Celery's names: ``start_worker`` (``worker.py``), the test app
(``app.py``), the ``celery.ping`` task (``tasks.py``); the pytest fixtures are
``celeriac.contrib.pytest``, and ``plugin.py`` is the ``pytest11`` entry point that loads
them when a project turns them on."""
