"""Fixtures of the security tests: the factory_boy session fixture."""

from __future__ import annotations

from tests.factories import factories

__all__ = ["factories"]
