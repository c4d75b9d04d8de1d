"""Beat: periodic tasks, sent exactly once per tick by any number of beat processes.

- ``entries.py``: ``beat_schedule`` and ``add_periodic_task`` entries, checked at start-up;
  each tick's task id (``tick_id``).
- ``loop.py``: ``Beat``, the loop: claiming ticks through the broker, the missed-tick and
  overlap policies, back-off; ``run_with_worker`` for ``celeriac worker -B``.
- ``state.py``: the records beats share (last fire, on/off switches).
- ``ops.py``: list, switch and run-now, for the CLI and the Django admin.
- ``cli.py``: ``celeriac beat``.

The arithmetic of schedules lives in ``celeriac.schedules``.
"""

from .entries import BeatConfigError, Entry, tick_id
from .loop import Beat, ConfigSource, EntrySource, plan_ticks, run_with_worker

__all__ = ["Beat", "BeatConfigError", "ConfigSource", "Entry", "EntrySource", "plan_ticks", "run_with_worker",
           "tick_id"]
