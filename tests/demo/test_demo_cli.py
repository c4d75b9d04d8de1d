"""``celeriac demo`` end to end, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from celeriac.demo.standin import count_statuses, generate_numbers


def test_demo_of_50_checks_matches_the_truth_table() -> None:
    env = {**os.environ, "COLUMNS": "120"}
    finished = subprocess.run(
        [sys.executable, "-m", "celeriac", "demo", "--count", "50", "--delay-ms", "20", "--concurrency", "100"],
        capture_output=True, text=True, timeout=110, env=env,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    output = finished.stdout
    assert "50 of 50 checks done" in output
    assert "All counts match the stand-in's truth table" in output
    for status, count in count_statuses(generate_numbers(50, seed=0)).items():
        assert re.search(rf"{status}\s*│\s*{count}\s*│\s*{count}\s*│\s*yes", output), output
