"""Tests of the api part of the submission portal."""
