"""Test helpers (imported by test modules; conftest.py holds fixtures only)."""
