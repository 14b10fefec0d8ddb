"""The honeypot's keyspace kept across restarts: snapshot plus append-only journal."""
