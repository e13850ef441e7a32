"""Tests of the browser part of the submission portal."""
