"""Tests of `etcdsec report`: scans and honeypot events read back from SQLite and PostgreSQL."""
