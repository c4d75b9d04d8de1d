"""The reference story, runnable offline: business registration checks against a stand-in.

``crn`` validates numbers, ``standin`` plays the tax office's XML service, ``tasks`` holds
the check task, and ``cli`` is ``celeriac demo``, which runs them together on SQLite.
"""
