"""The audit tests share the workflow tests' collaborative and app."""

from tests.cycles.conftest import as_user, password_hash, wf_app, world

__all__ = ["as_user", "password_hash", "wf_app", "world"]
