"""Tests of the audit part of the submission portal."""
