"""The sqlite server: its broker, result store and everything built on them."""
