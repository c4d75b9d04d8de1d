"""Hypothesis profiles and the per-broker worker harness.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default) keeps the whole module within
about a minute on two cores; ``fuzz`` (``make fuzz``) draws fifty times as many examples;
``quick`` a fifth.
Examples found failing are kept under ``.pytest_cache/hypothesis`` and tried first on
the next run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from .harness import Harness, fresh_urls, short_logs

ROOT = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
SCALE = {"ci": 1, "fuzz": 50, "quick": 0.2}

_common = dict(
    deadline=None,
    print_blob=True,
    # No explain phase: it re-runs a failing example dozens of times, and an example that
    # wedges a worker costs seconds each time.
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    # One worker serves every example of a test: that fixture is function-scoped on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=DirectoryBasedExampleDatabase(str(ROOT / ".pytest_cache" / "hypothesis")),
)
for _name, _scale in SCALE.items():
    settings.register_profile(_name, max_examples=max(1, int(100 * _scale)), **_common)


def budget(ci_examples: int) -> settings:
    """Settings for a property that draws ``ci_examples`` examples per broker under ``ci``."""
    scale = SCALE.get(PROFILE, 1)
    return settings(settings.get_profile(PROFILE if PROFILE in SCALE else "ci"),
                    max_examples=max(1, int(ci_examples * scale)))


@pytest.fixture(scope="module", params=["memory", "sqlite", "redis"])
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One long-lived worker per broker for every example of every property in the module.

    A failure that may have hurt it replaces it by a fresh one on a fresh namespace.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(short_logs())
        new_url = fresh_urls(request.param, tmp_path_factory.mktemp(f"fuzz-{request.param}"), stack)
        harness = Harness(request.param, new_url)
        try:
            yield harness
        finally:
            harness.close()
            if harness.restarts > 1 or harness.stuck_workers:
                print(f"\n[{request.param}] {harness.examples} examples, {harness.restarts - 1} worker "
                      f"restarts after failures, {harness.stuck_workers} workers that did not stop")
