"""Persistence: SQLite by default, PostgreSQL by URL. Plain values in and out (rows, JSON, ints): the
store imports no floor above it, and each caller builds its own types from what it reads."""
