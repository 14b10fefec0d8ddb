"""Events, the one format the honeypot and the monitor share, and where they go.

`ids` names every event id with its fields; `jsonl` appends them to a rotating JSON-lines file;
`store` writes them to SQLite/PostgreSQL; `alerts` sends chosen ones to a webhook or syslog;
`metrics` serves Prometheus text on a loopback port. Nothing here knows who emits the events.
"""
