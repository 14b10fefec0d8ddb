"""Tests of etcdsec.store: scan storage in SQLite and PostgreSQL, and hostile databases."""
