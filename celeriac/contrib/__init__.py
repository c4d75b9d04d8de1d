"""Integrations with other frameworks; each sub-package imports its framework lazily."""
