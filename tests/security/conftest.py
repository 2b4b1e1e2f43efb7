"""Attacker tests: each file here tries one class of attack and asserts it fails.

They use the shared fixtures of tests/conftest.py, so everything that touches the database runs
on SQLite and on PostgreSQL.
"""
