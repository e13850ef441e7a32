"""Tests of the cycles part of the submission portal."""
