"""Persistence: SQLite by default, PostgreSQL by URL."""
